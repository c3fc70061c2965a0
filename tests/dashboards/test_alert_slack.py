"""The alerts page's Slack card (issue 16): owners and billing members set, test and remove
the account's incoming-webhook URL; members see only whether one is set (masked); errors
are a 422 naming the field; another account is untouched; staff need a permission."""

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse

from billing.models import Account, Membership
from tests.factories import make_user
from tests.usage.webhook_receiver import Receiver

pytestmark = pytest.mark.django_db

PAGE = reverse("dashboards:alerts")
SET = reverse("dashboards:alert_slack_set")
TEST = reverse("dashboards:alert_slack_test")
REMOVE = reverse("dashboards:alert_slack_remove")
HTMX = {"HX-Request": "true"}
HOOK = "https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXabcd"


@pytest.fixture
def account():
    return Account.objects.create(name="Initech", billing_email="b@initech.example")


@pytest.fixture
def guarded(settings):
    settings.ALERT_CHANNELS_ALLOW_PRIVATE_HOSTS = False


def _url(account) -> str:
    return Account.objects.get(pk=account.pk).slack_webhook_url


@pytest.mark.parametrize("role", [Membership.Role.OWNER, Membership.Role.BILLING])
def test_owners_and_billing_members_set_and_remove(client, account, guarded, role):
    client.force_login(make_user(account, "u", role=role))
    page = client.get(PAGE).content.decode()
    assert 'data-testid="slack-form"' in page and "No Slack webhook set." in page
    response = client.post(SET, {"slack_webhook_url": HOOK}, headers=HTMX)
    assert response.status_code == 200
    assert _url(account) == HOOK
    html = response.content.decode()
    assert "https://hooks.slack.com/…abcd" in html and "XXXXXXXXXXXX" not in html
    assert 'data-testid="slack-test"' in html
    # Without htmx: back to the page.
    assert client.post(REMOVE).url == PAGE
    assert _url(account) == ""


def test_a_member_sees_the_masked_url_and_cannot_change_it(client, account, guarded):
    Account.objects.filter(pk=account.pk).update(slack_webhook_url=HOOK)
    client.force_login(make_user(account, "m", role=Membership.Role.MEMBER))
    page = client.get(PAGE).content.decode()
    assert "https://hooks.slack.com/…abcd" in page and "B000" not in page
    assert 'data-testid="slack-form"' not in page and 'data-testid="slack-test"' not in page
    assert client.post(SET, {"slack_webhook_url": "https://evil.example/x"}).status_code == 403
    assert client.post(TEST).status_code == 403
    assert client.post(REMOVE).status_code == 403
    assert _url(account) == HOOK


def test_an_owner_cannot_reach_another_account(client, account, guarded):
    other = Account.objects.create(name="Globex", billing_email="b@globex.example")
    Account.objects.filter(pk=other.pk).update(slack_webhook_url=HOOK)
    client.force_login(make_user(account, "o"))
    # ?account= of an account that is not theirs: a 404, nothing changed.
    assert client.post(f"{REMOVE}?account={other.pk}").status_code == 404
    assert client.post(f"{SET}?account={other.pk}", {"slack_webhook_url": HOOK}).status_code == 404
    assert _url(other) == HOOK
    # Their own post changes only their own account.
    client.post(SET, {"slack_webhook_url": "https://hooks.slack.com/services/mine"})
    assert (_url(account), _url(other)) == ("https://hooks.slack.com/services/mine", HOOK)


@pytest.mark.parametrize(
    ("url", "code_words"),
    [
        ("", "enter a URL"),
        ("hooks.slack.com/services/x", "enter a full URL"),
        ("http://hooks.slack.com/services/x", "it must start with https://"),
        ("https://hooks.slack.com/" + "x" * 477, "at most 500 characters (this one has 501)"),
        ("https://192.168.0.10/hook", "private, loopback or link-local"),
    ],
)
def test_each_error_is_a_422_naming_the_field(client, account, guarded, url, code_words):
    client.force_login(make_user(account, "o"))
    response = client.post(SET, {"slack_webhook_url": url}, headers=HTMX)
    assert response.status_code == 422
    html = response.content.decode()
    assert 'id="id_slack_webhook_url-error"' in html
    assert "Slack webhook URL: " in html and code_words in html
    assert _url(account) == ""
    # Without htmx: the whole page, with the error.
    page = client.post(SET, {"slack_webhook_url": url})
    assert page.status_code == 422 and code_words in page.content.decode()


def test_send_a_test_message_shows_the_receivers_status(client, account):
    slack = Receiver(first_answers=(404,)).start()  # test settings allow 127.0.0.1
    try:
        client.force_login(make_user(account, "o", role=Membership.Role.BILLING))
        assert (
            client.post(SET, {"slack_webhook_url": f"{slack.url}/services/T/B/x"}).status_code
            == 302
        )
        first = client.post(TEST, headers=HTMX).content.decode()
        assert "Test message not accepted: the receiver answered 404." in first
        second = client.post(TEST, headers=HTMX).content.decode()
        assert "Test message sent: the receiver answered 200." in second
        assert [r.path for r in slack.received] == ["/services/T/B/x"] * 2
        assert slack.received[1].json == {
            "text": "Meterdesk test message: alerts for *Initech* will be posted here."
        }
    finally:
        slack.stop()


def test_a_test_message_to_a_private_host_shows_the_refusal(client, account, guarded):
    # Saved earlier (e.g. while the setting allowed it, or straight in the database).
    Account.objects.filter(pk=account.pk).update(slack_webhook_url="https://localhost:9/x")
    client.force_login(make_user(account, "o"))
    html = client.post(TEST, headers=HTMX).content.decode()
    assert "Test message not sent: refused: host localhost resolves to a non-public" in html


def test_a_test_without_a_url_is_a_422(client, account):
    client.force_login(make_user(account, "o"))
    response = client.post(TEST, headers=HTMX)
    assert response.status_code == 422
    assert "Slack webhook URL: set one before sending a test." in response.content.decode()


def test_staff_viewing_as_need_change_account(client, account, guarded):
    staff = get_user_model().objects.create_user("staff", password="pw-staff-123", is_staff=True)
    staff.user_permissions.add(
        Permission.objects.get(codename="view_account", content_type__app_label="billing")
    )
    client.force_login(staff)
    query = f"?account={account.pk}"
    page = client.get(PAGE + query).content.decode()
    assert 'data-testid="slack-form"' not in page
    assert client.post(SET + query, {"slack_webhook_url": HOOK}).status_code == 403
    staff.user_permissions.add(
        Permission.objects.get(codename="change_account", content_type__app_label="billing")
    )
    client.force_login(get_user_model().objects.get(pk=staff.pk))
    response = client.post(SET + query, {"slack_webhook_url": HOOK})
    assert response.status_code == 302 and response.url == f"{PAGE}{query}"
    assert _url(account) == HOOK


def test_the_account_admin_shows_the_url_masked(client, account):
    Account.objects.filter(pk=account.pk).update(slack_webhook_url=HOOK)
    admin = get_user_model().objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin)
    html = client.get(reverse("admin:billing_account_change", args=[account.pk])).content
    assert "hooks.slack.com/…abcd" in html.decode() and b"B000" not in html
