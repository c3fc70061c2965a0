/* The alert form shows only the fields of the chosen rule kind. Without this script
   both groups show under their legends and the server reads only the chosen kind's. */
(function () {
  "use strict";
  function sync(form) {
    const select = form.querySelector("select[name=kind]");
    if (!select) return;
    form.dataset.kind = select.value;
    form.querySelectorAll("fieldset[data-kinds]").forEach((group) => {
      const shown = group.dataset.kinds.split(" ").includes(select.value);
      group.hidden = !shown;
      group.disabled = !shown; // not submitted either
    });
  }
  function syncAll() { document.querySelectorAll("form.alert-form").forEach(sync); }
  document.addEventListener("change", (event) => {
    if (event.target.matches("form.alert-form select[name=kind]")) sync(event.target.form);
  });
  document.addEventListener("DOMContentLoaded", syncAll);
  document.addEventListener("htmx:afterSwap", syncAll);
})();
