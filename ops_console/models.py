"""Operator views over the pipeline's rows (proxies: no tables of their own)."""

from catalog.models import Media


class StuckMedia(Media):
    class Meta:
        proxy = True
        verbose_name = "stuck media item"
        verbose_name_plural = "stuck media"


class FailedMedia(Media):
    class Meta:
        proxy = True
        verbose_name = "failed media item"
        verbose_name_plural = "failed media"


class DuplicateMedia(Media):
    class Meta:
        proxy = True
        verbose_name = "duplicate pair"
        verbose_name_plural = "duplicate pairs"
