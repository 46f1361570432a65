from django.contrib import admin

from media_pipeline.models import RejectedS3Event


@admin.register(RejectedS3Event)
class RejectedS3EventAdmin(admin.ModelAdmin):
    list_display = ["received_at", "tenant_slug", "event_name", "key", "reason"]
    list_filter = ["event_name", "tenant_slug"]
    search_fields = ["key", "reason", "message_id"]
    show_full_result_count = False
    readonly_fields = ["received_at", "message_id", "event_name", "bucket", "key", "tenant_slug", "reason", "body"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
