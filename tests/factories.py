import factory
from django.contrib.auth import get_user_model

from curation.models import Dataset, Image


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"ds{n}")
    format = Dataset.Format.IMAGEFOLDER
    source = "/nowhere"


class ImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Image

    dataset = factory.SubFactory(DatasetFactory)
    path = factory.Sequence(lambda n: f"happy/{n}.png")
    file = factory.LazyAttribute(lambda o: f"datasets/{o.dataset.name}/{o.path}")
    content_hash = factory.Sequence(lambda n: f"{n:064x}")
    width = 64
    height = 64
    split = Image.Split.TRAIN
    original_label = 1
    label = 1
