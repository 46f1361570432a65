from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from media_pipeline.embedder import ModelUnavailable, configured_embedder, current_model_name, model_name_for
from media_pipeline.reembed import drop_other_models, missing, other_models, reembed
from ops_console.maintenance import progress_bar, tenant_or_error

# Media per batch: the batch's images go through the model together (about
# 0.6 MB of pixels each at CLIP's input size), and each batch is one query for
# the next ids to do.
DEFAULT_BATCH_SIZE = 64
# Vectors deleted per statement with --drop-others.
DROP_BATCH_SIZE = 5_000


class Command(BaseCommand):
    help = (
        "Re-embed every ready media with another CLIP model, beside the current vectors (searches keep "
        "using CLIP_MODEL's). Resumable: a rerun does only what is missing. Then point CLIP_MODEL at the "
        "new model and run again with --drop-others to delete the old vectors."
    )

    def add_arguments(self, parser):
        parser.add_argument("--model", required=True, help="Hub id or local directory of the new CLIP model.")
        parser.add_argument("--tenant", help="Only this tenant's media (slug).")
        parser.add_argument("--dry-run", action="store_true", help="Count what would be embedded; change nothing.")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
        parser.add_argument(
            "--drop-others",
            action="store_true",
            help="Delete vectors of other models, once CLIP_MODEL is the new model and nothing is missing.",
        )

    def handle(self, *args, model, tenant, dry_run, batch_size, drop_others, **options):
        tenant = tenant_or_error(tenant)
        name = model_name_for(model)
        todo = missing(name, tenant).count()
        if drop_others:
            self._drop_others(name, tenant, todo, dry_run)
            return
        if dry_run:
            self.stdout.write(f"{todo} ready media have no vectors of {name} yet (dry run).")
            return
        if not todo:
            self.stdout.write(self.style.SUCCESS(f"Every ready media already has vectors of {name}."))
            return
        try:
            embedder = configured_embedder(model)
        except ModelUnavailable as exc:
            raise CommandError(str(exc)) from exc
        with progress_bar(self.stdout, todo, f"Embedding with {name}") as bar:
            report = reembed(embedder, tenant, batch_size, progress=bar.update)
        for media_id, reason in report.unreadable:
            self.stdout.write(self.style.WARNING(f"  media {media_id} could not be read again: {reason}"))
        self.stdout.write(
            f"Embedded {report.embedded} media with {name}; {report.busy} were being processed (run again), "
            f"{len(report.unreadable)} could not be read."
        )
        left = missing(name, tenant).count()
        if left:
            self.stdout.write(self.style.WARNING(f"{left} media still lack vectors of {name}: run this again."))
        else:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Every ready media has vectors of {name}. Set CLIP_MODEL={model} for the web and worker "
                    f"processes, restart them, then run `reembed --model {model} --drop-others`. Retrain the "
                    "recognizers: their versions read the old model's vectors."
                )
            )

    def _drop_others(self, name: str, tenant, todo: int, dry_run: bool) -> None:
        if current_model_name() != name:
            raise CommandError(
                f"CLIP_MODEL is {settings.CLIP_MODEL}, not {name}: searches still read the vectors you would drop."
            )
        if todo:
            raise CommandError(f"{todo} ready media have no vectors of {name} yet: re-embed them first.")
        if dry_run:
            self.stdout.write(f"Would delete {other_models(name, tenant).count()} vectors of other models (dry run).")
            return
        deleted = drop_other_models(name, tenant, DROP_BATCH_SIZE)
        self.stdout.write(self.style.SUCCESS(f"Deleted {deleted} vectors of other models."))
