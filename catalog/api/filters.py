import django_filters
from django.db.models import Q, QuerySet

from catalog.models import Media, Product


class ProductFilter(django_filters.FilterSet):
    category = django_filters.CharFilter(field_name="category")
    q = django_filters.CharFilter(method="search", help_text="Words in the title or sku.")

    class Meta:
        model = Product
        fields = ["category", "q"]

    def search(self, queryset: QuerySet[Product], name: str, value: str) -> QuerySet[Product]:
        return queryset.filter(Q(title__icontains=value) | Q(sku__icontains=value))


class MediaFilter(django_filters.FilterSet):
    status = django_filters.ChoiceFilter(choices=Media.Status.choices)
    kind = django_filters.ChoiceFilter(choices=Media.Kind.choices)
    product = django_filters.CharFilter(field_name="product__sku", help_text="SKU of the product.")

    class Meta:
        model = Media
        fields = ["status", "kind", "product"]
