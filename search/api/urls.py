from django.urls import path

from search.api.views import ImageSearchView, SimilarSearchView, TextSearchView

urlpatterns = [
    path("search/image", ImageSearchView.as_view(), name="search-image"),
    path("search/text", TextSearchView.as_view(), name="search-text"),
    path("search/similar/<int:media_id>", SimilarSearchView.as_view(), name="search-similar"),
]
