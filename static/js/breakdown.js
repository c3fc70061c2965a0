// Keeps a customer's open breakdowns (<details data-testid="breakdown-...">) open while
// htmx replaces the numbers around them every few seconds.
(() => {
  const open = new Set();
  document.addEventListener("toggle", (event) => {
    const el = event.target;
    if (!(el instanceof HTMLDetailsElement) || !el.dataset.testid) return;
    if (el.open) open.add(el.dataset.testid); else open.delete(el.dataset.testid);
  }, true);
  document.addEventListener("htmx:afterSettle", () => {
    for (const id of open) {
      const el = document.querySelector(`details[data-testid="${CSS.escape(id)}"]`);
      if (el && !el.open) el.open = true;
    }
  });
})();
