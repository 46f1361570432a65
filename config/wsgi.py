import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()


def _preload_search_model() -> None:
    from django.conf import settings

    if settings.SEARCH_PRELOAD:
        from media_pipeline.embedder import get_embedder

        get_embedder().warm_up()  # both towers: the web serves image and text searches


_preload_search_model()
