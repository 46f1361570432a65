from django.apps import AppConfig


class SearchConfig(AppConfig):
    name = "search"
    verbose_name = "Search"

    def ready(self) -> None:
        from catalog.signals import media_ready
        from search.recognizer.predictions import on_media_ready

        # The recognizer predicts the product of each newly ready, unassigned item.
        media_ready.connect(on_media_ready, dispatch_uid="search.recognizer.predict_ready_media")
