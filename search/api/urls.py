from django.urls import path

from search.api.views import FeedbackView, ImageSearchView, RecommendView, SimilarSearchView, TextSearchView

urlpatterns = [
    path("search/image", ImageSearchView.as_view(), name="search-image"),
    path("search/text", TextSearchView.as_view(), name="search-text"),
    path("search/similar/<int:media_id>", SimilarSearchView.as_view(), name="search-similar"),
    path("search/recommend", RecommendView.as_view(), name="search-recommend"),
    path("search/feedback", FeedbackView.as_view(), name="search-feedback"),
]
