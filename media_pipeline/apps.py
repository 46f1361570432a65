from django.apps import AppConfig


class MediaPipelineConfig(AppConfig):
    name = "media_pipeline"
    verbose_name = "Media pipeline"

    def ready(self) -> None:
        from django.conf import settings
        from PIL import Image

        # Pillow's decompression-bomb guard at our pixel limit, in every process
        # that opens images (probe.py turns its warning into a refusal).
        Image.MAX_IMAGE_PIXELS = settings.MAX_IMAGE_PIXELS

        from media_pipeline import worker  # noqa: F401 - connects the worker's signal handlers
