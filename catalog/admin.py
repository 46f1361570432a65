from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import Count, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils import timezone
from import_export.admin import ImportExportModelAdmin
from import_export.forms import ConfirmImportForm, ImportForm

from catalog import pictures, webhooks
from catalog.media import delete_media
from catalog.models import (
    ApiKey,
    Embedding,
    Media,
    MediaQuerySet,
    Product,
    Tenant,
    VideoFrame,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from catalog.product_resource import ProductResource
from catalog.products import delete_products
from catalog.tenants import create_tenant
from catalog.transitions import requeue


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "is_active", "product_count", "media_count", "created_at"]
    list_filter = ["is_active"]
    search_fields = ["slug", "name"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Tenant]:
        def count_of(model: type[Product] | type[Media]) -> Coalesce:
            rows = model.objects.filter(tenant=OuterRef("pk")).order_by().values("tenant")
            return Coalesce(Subquery(rows.annotate(n=Count("pk")).values("n")), 0)

        return super().get_queryset(request).annotate(product_count=count_of(Product), media_count=count_of(Media))

    def save_model(self, request: HttpRequest, obj: Tenant, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
        else:
            create_tenant(obj)  # with its settings

    @admin.display(ordering="product_count", description="products")
    def product_count(self, tenant: Tenant) -> int:
        return tenant.product_count  # type: ignore[attr-defined]

    @admin.display(ordering="media_count", description="media")
    def media_count(self, tenant: Tenant) -> int:
        return tenant.media_count  # type: ignore[attr-defined]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["prefix", "tenant", "name", "scope", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["tenant", "scope", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["prefix", "name", "tenant__slug"]
    list_select_related = ["tenant"]
    readonly_fields = ["prefix", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request, obj=None):
        # A key's tenant and scope are fixed once issued: revoke and issue a new one.
        return self.readonly_fields + (["tenant", "scope"] if obj else [])

    def save_model(self, request, obj: ApiKey, form, change: bool) -> None:
        if not change:
            plaintext = obj.set_new_secret()
            super().save_model(request, obj, form, change)
            self.message_user(
                request,
                f"API key for {obj.tenant.slug}: {plaintext} — copy it now, it is not shown again.",
                messages.WARNING,
            )
            return
        super().save_model(request, obj, form, change)

    @admin.action(description="Revoke selected API keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, f"Revoked {count} API key(s).")


def _tenant_choice(**kwargs: Any) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(queryset=Tenant.objects.order_by("slug"), to_field_name="slug", **kwargs)


class ProductImportForm(ImportForm):
    tenant = _tenant_choice(help_text="The tenant whose catalog the file goes into; rows are matched by sku.")
    field_order = ["tenant", "resource", "import_file", "format"]


class ProductConfirmImportForm(ConfirmImportForm):
    tenant = _tenant_choice(widget=forms.HiddenInput)


@admin.register(Product)
class ProductAdmin(ImportExportModelAdmin):
    # Import: preview with each row's error, then confirm (catalog/product_resource.py).
    # Export: the products the list shows, with its filters.
    resource_classes = [ProductResource]
    import_form_class = ProductImportForm
    confirm_form_class = ProductConfirmImportForm
    list_display = ["sku", "title", "category", "tenant", "media_count", "updated_at"]
    list_filter = ["tenant", "category"]
    search_fields = ["sku", "title"]
    list_select_related = ["tenant"]
    readonly_fields = ["created_at", "updated_at", "gallery"]

    @admin.display(description="media")
    def gallery(self, product: Product):
        return pictures.gallery(product) if product.pk else "—"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Product]:
        return super().get_queryset(request).annotate(media_count=Count("media"))

    @admin.display(ordering="media_count", description="media")
    def media_count(self, product: Product) -> int:
        return product.media_count  # type: ignore[attr-defined]

    def get_confirm_form_initial(self, request: HttpRequest, import_form: Any) -> dict[str, Any]:
        initial = super().get_confirm_form_initial(request, import_form)
        if import_form is not None:
            initial["tenant"] = import_form.cleaned_data["tenant"].slug
        return initial

    def get_import_resource_kwargs(self, request: HttpRequest, **kwargs: Any) -> dict[str, Any]:
        form = kwargs.get("form")
        tenant = form.cleaned_data.get("tenant") if form is not None and hasattr(form, "cleaned_data") else None
        return {**super().get_import_resource_kwargs(request, **kwargs), "import_tenant": tenant}

    def delete_model(self, request: HttpRequest, obj: Product) -> None:
        delete_products(Product.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Product]) -> None:
        delete_products(queryset)


class NearDuplicateFilter(admin.SimpleListFilter):
    title = "duplicates"
    parameter_name = "near_duplicate"

    def lookups(self, request, model_admin):
        return [("yes", "Copies of another item"), ("original", "Originals with copies")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(duplicate_of__isnull=False)
        if self.value() == "original":
            return queryset.filter(near_duplicates__isnull=False).distinct()
        return queryset


@admin.register(Media)
class MediaAdmin(admin.ModelAdmin):
    list_display = [
        pictures.picture_column,
        "id",
        "tenant",
        "product",
        "kind",
        "status",
        "attempts",
        "size",
        "duplicate_of",
        "duplicate_kind",
        "created_at",
        "processed_at",
    ]
    list_filter = ["status", "kind", "source", NearDuplicateFilter, "duplicate_kind", "tenant"]
    search_fields = ["original_filename", "storage_key", "product__sku", "sha256", "error"]
    show_full_result_count = False
    list_select_related = ["tenant", "product", "duplicate_of"]
    # Newest first by the primary key's index: the model's -created_at would
    # sort a million rows for each page.
    ordering = ["-pk"]
    # The product is set by uploads and the recognizer, which keep embeddings
    # in step; editing it here could cross tenants.
    readonly_fields = [
        "picture",
        "tenant",
        "product",
        "kind",
        "source",
        "storage_key",
        "original_filename",
        "content_type",
        "size",
        "sha256",
        "width",
        "height",
        "duration_ms",
        "status",
        "attempts",
        "error",
        "created_at",
        "updated_at",
        "processing_started_at",
        "processed_at",
        "duplicate_of",
        "duplicate_kind",
        "duplicate_similarity",
        "thumbnail_key",
        "phash",
        "s3_etag",
        "s3_sequencer",
    ]
    actions = ["reprocess"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # media arrive through the API or S3, which validate them

    @admin.display(description="picture")
    def picture(self, media: Media):
        return pictures.media_picture(media, pictures.GALLERY_SIDE)

    def delete_model(self, request: HttpRequest, obj: Media) -> None:
        delete_media(Media.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Media]) -> None:
        delete_media(queryset)

    @admin.action(description="Reprocess selected media (not those processing now)")
    def reprocess(self, request: HttpRequest, queryset: MediaQuerySet) -> None:
        ids = requeue(queryset)
        skipped = queryset.count() - len(ids)
        self.message_user(request, f"Queued {len(ids)} media for processing; skipped {skipped} processing now.")


@admin.register(VideoFrame)
class VideoFrameAdmin(admin.ModelAdmin):
    list_display = ["id", "media", "index", "timestamp_ms", "is_keyframe", "tenant"]
    list_filter = ["tenant", "is_keyframe"]
    list_select_related = ["tenant", "media"]
    show_full_result_count = False
    readonly_fields = ["tenant", "media", "index", "timestamp_ms", "thumbnail_key", "is_keyframe", "phash"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(Embedding)
class EmbeddingAdmin(admin.ModelAdmin):
    list_display = ["id", "tenant", "media", "frame", "product", "model_name", "created_at"]
    list_filter = ["tenant", "model_name"]
    search_fields = ["product__sku", "model_name"]
    list_select_related = ["tenant", "media", "frame", "product"]
    show_full_result_count = False
    exclude = ["vector"]
    readonly_fields = ["tenant", "media", "frame", "product", "model_name", "created_at"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Embedding | None = None) -> bool:
        return False


# --- Webhooks ----------------------------------------------------------------------


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    list_display = ["url", "tenant", "events", "is_active", "failing_since", "deactivated_reason", "created_at"]
    list_filter = ["is_active", "tenant"]
    search_fields = ["url", "tenant__slug"]
    list_select_related = ["tenant"]
    # Endpoints are the tenants' own (made through the API, where their secret is shown once).
    readonly_fields = [
        "tenant",
        "url",
        "events",
        "created_at",
        "failing_since",
        "deactivated_at",
        "deactivated_reason",
    ]
    exclude = ["secret"]
    actions = ["reactivate"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Reactivate selected endpoints")
    def reactivate(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        count = webhooks.reactivate(queryset)
        self.message_user(
            request, f"Reactivated {count} endpoint(s); send their failed deliveries again to retry them."
        )


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = readonly_fields = ("attempted_at", "status_code", "error", "duration_ms")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(admin.ModelAdmin):
    list_display = [
        "message_id",
        "event_type",
        "endpoint",
        "tenant",
        "status",
        "attempts",
        "last_status_code",
        "last_error",
        "next_attempt_at",
        "created_at",
    ]
    list_filter = ["status", "event_type", "tenant"]
    search_fields = ["message_id", "endpoint__url", "last_error"]
    list_select_related = ["tenant", "endpoint"]
    show_full_result_count = False
    readonly_fields = [
        "tenant",
        "endpoint",
        "message_id",
        "event_type",
        "body",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "claimed_until",
        "last_status_code",
        "last_error",
        "created_at",
        "delivered_at",
    ]
    inlines = [WebhookAttemptInline]
    actions = ["send_again"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Send selected deliveries again")
    def send_again(self, request: HttpRequest, queryset: QuerySet[WebhookDelivery]) -> None:
        ids = webhooks.send_again(queryset)
        skipped = queryset.count() - len(ids)
        self.message_user(
            request, f"Sending {len(ids)} delivery(ies) again; skipped {skipped} (deactivated endpoint or under way)."
        )


@admin.register(WebhookAttempt)
class WebhookAttemptAdmin(admin.ModelAdmin):
    list_display = ["attempted_at", "delivery", "tenant", "status_code", "error", "duration_ms"]
    list_filter = ["tenant", "status_code"]
    list_select_related = ["tenant", "delivery"]
    show_full_result_count = False
    readonly_fields = ["tenant", "delivery", "attempted_at", "status_code", "error", "duration_ms"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
