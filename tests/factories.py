"""factory_boy factories for the models tests build: pass the fields a test is about, the rest get valid defaults."""
import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from curation.models import Dataset, GanModel, GeneratedImage, Image, Job, Run, TransformScore
from curation.roles import CURATORS_GROUP


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pw")


class CuratorFactory(UserFactory):
    """A user in the curators group (may start and cancel jobs, resolve disputes)."""

    class Meta:
        skip_postgeneration_save = True

    @factory.post_generation
    def curators_group(user, create, extracted, **kwargs):
        if create:
            user.groups.add(Group.objects.get_or_create(name=CURATORS_GROUP)[0])


class DatasetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Dataset

    name = factory.Sequence(lambda n: f"ds{n}")
    format = Dataset.Format.IMAGEFOLDER
    source = "/nowhere"
    # The random audit slice is off in tests unless one turns it on: queue-order tests expect the suspicion order.
    audit_share = 0.0


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


class JobFactory(factory.django.DjangoModelFactory):
    """A job row as the queue holds it; nothing is sent to a broker."""

    class Meta:
        model = Job

    kind = "import_dataset"
    params = factory.LazyFunction(dict)


class RunFactory(factory.django.DjangoModelFactory):
    """A classifier run's row (no checkpoint or prediction files)."""

    class Meta:
        model = Run

    dataset = factory.SubFactory(DatasetFactory)
    arch = "small_cnn"


class GanModelFactory(factory.django.DjangoModelFactory):
    """A CycleGAN's row for a label pair (no checkpoint file)."""

    class Meta:
        model = GanModel

    dataset = factory.SubFactory(DatasetFactory)
    source_label = 1
    target_label = 2


class TransformScoreFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TransformScore

    image = factory.SubFactory(ImageFactory)
    gan = factory.SubFactory(GanModelFactory, dataset=factory.SelfAttribute("..image.dataset"))
    direction = "AB"
    target_label = factory.SelfAttribute("gan.target_label")
    epoch = 1
    ssim = 0.5


class GeneratedImageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = GeneratedImage

    source_image = factory.SubFactory(ImageFactory)
    gan = factory.SubFactory(GanModelFactory, dataset=factory.SelfAttribute("..source_image.dataset"))
    target_label = factory.SelfAttribute("gan.target_label")
    file = factory.Sequence(lambda n: f"gans/generated/{n}.png")
    content_hash = factory.Sequence(lambda n: f"g{n:063x}")
