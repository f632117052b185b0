"""The admin never offers to change or delete the append-only rows (the audit's LabelChange, ReviewSkip): no delete
button, no bulk delete, and a delete or save posted anyway is refused with 403, never a 500. And Django's password
validators are on: a one-letter password is refused where a person sets one."""
import pytest
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.test import Client

from curation.models import LabelChange, ReviewSkip
from curation.services import image_label_change
from tests.factories import DatasetFactory, ImageFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    client = Client()
    client.force_login(UserFactory(username="ada", is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def audit_rows():
    image = ImageFactory(dataset=DatasetFactory(name="faces"))
    user = UserFactory(username="rita")
    change = image_label_change(image_id=image.pk, action="exclude", expected_version=1, user=user)
    skip = ReviewSkip.objects.create(image=image, user=user)
    return change, skip


@pytest.mark.parametrize("model", ["labelchange", "reviewskip"])
def test_admin_offers_no_delete_and_refuses_one(admin_client, audit_rows, model):
    row = audit_rows[0] if model == "labelchange" else audit_rows[1]
    listing = admin_client.get(f"/admin/curation/{model}/")
    assert listing.status_code == 200 and "delete_selected" not in listing.content.decode()
    page = admin_client.get(f"/admin/curation/{model}/{row.pk}/change/")
    assert page.status_code == 200 and f"/{row.pk}/delete/" not in page.content.decode()
    assert admin_client.get(f"/admin/curation/{model}/{row.pk}/delete/").status_code == 403
    assert admin_client.post(f"/admin/curation/{model}/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.post(f"/admin/curation/{model}/", {"action": "delete_selected", "_selected_action": [row.pk],
                                                           "post": "yes"}).status_code in (200, 302)
    assert admin_client.post(f"/admin/curation/{model}/{row.pk}/change/", {}).status_code == 403
    assert LabelChange.objects.count() == 1 and ReviewSkip.objects.count() == 1


def test_password_validators_refuse_a_short_password():
    with pytest.raises(ValidationError, match="at least 10 characters"):
        validate_password("a")
    validate_password("a long enough passphrase 7")


def test_admin_refuses_a_one_letter_password(admin_client):
    user = UserFactory(username="rita")
    page = admin_client.post(f"/admin/auth/user/{user.pk}/password/",
                             {"password1": "x", "password2": "x", "usable_password": "true"})
    assert page.status_code == 200 and "at least 10 characters" in page.content.decode()
    user.refresh_from_db()
    assert user.check_password("pw")
