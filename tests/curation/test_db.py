from curation.db import update_rows
from curation.models import Dataset, Image


def test_update_rows_writes_the_named_fields_of_each_row_and_nothing_else(db):
    ds = Dataset.objects.create(name="d", format="csv", source="x")
    images = Image.objects.bulk_create([
        Image(dataset=ds, path=f"{i}.png", file="f", content_hash=str(i), width=1, height=1, split="train",
              original_label=1, label=1) for i in range(5)])
    images = list(Image.objects.filter(dataset=ds).order_by("id"))
    for k, img in enumerate(images):
        img.suspicion, img.flagged, img.gan_suggested_label = k / 10, k % 2 == 0, None if k == 3 else k
        img.label = 7  # changed in memory but not named: must not be written

    assert update_rows(Image, images, ["suspicion", "flagged", "gan_suggested_label"], batch_size=2) == 5

    stored = list(Image.objects.filter(dataset=ds).order_by("id").values_list("suspicion", "flagged",
                                                                              "gan_suggested_label", "label"))
    assert stored == [(k / 10, k % 2 == 0, None if k == 3 else k, 1) for k in range(5)]
