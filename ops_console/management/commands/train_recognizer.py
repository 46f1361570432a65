import time

from django.core.management.base import BaseCommand, CommandError

from catalog.errors import Conflict
from ops_console.maintenance import progress_bar, tenant_or_error
from search.models import RecognizerModel
from search.recognizer import predictions, versions

POLL_INTERVAL_S = 1.0


class Command(BaseCommand):
    help = (
        "Train a new version of a tenant's product recognizer on a worker (or here, with --inline), "
        "following its progress, and print its held-out metrics."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument("--inline", action="store_true", help="Train in this process instead of on a worker.")
        parser.add_argument("--no-wait", action="store_true", help="Queue the training and return at once.")
        parser.add_argument(
            "--activate", action="store_true", help="Activate the new version once trained (it then predicts)."
        )
        parser.add_argument("--timeout", type=int, default=3600, help="Seconds to follow a worker's training.")

    def handle(self, *args, tenant, inline, no_wait, activate, timeout, **options):
        tenant = tenant_or_error(tenant)
        if tenant is None:
            raise CommandError("Name the tenant.")
        try:
            version = versions.start_training(tenant, enqueue=not inline)
        except Conflict as exc:
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Version {version.version} of {tenant.slug}'s recognizer queued.")
        if no_wait and not inline:
            self.stdout.write("Follow it in the admin (Recognizer versions) or with this command again.")
            return
        with progress_bar(self.stdout, 100, "Training", unit="%") as bar:

            def show(percent: int, message: str) -> None:
                bar.update(percent - bar.n)
                bar.set_postfix_str(message[:40], refresh=False)

            if inline:
                row_progress = versions.progress_writer(version.pk)

                def both(percent: int, message: str) -> None:
                    row_progress(percent, message)
                    show(percent, message)

                version = versions.train(version, progress=both)
            else:
                version = self._follow(version, show, timeout)
        self._report(version)
        if activate and version.status == RecognizerModel.Status.READY:
            versions.activate(version, predict=not inline)
            self.stdout.write(f"Version {version.version} is active.")
            if inline:
                report = predictions.predict_unassigned(tenant)
                self.stdout.write(
                    f"Unassigned media: {report.assigned} assigned, {report.waiting} waiting for review, "
                    f"{report.without_vectors} without vectors."
                )

    def _follow(self, version: RecognizerModel, show, timeout: int) -> RecognizerModel:
        deadline = time.monotonic() + timeout
        running = (RecognizerModel.Status.QUEUED, RecognizerModel.Status.TRAINING)
        while True:
            version.refresh_from_db()
            show(version.progress, version.progress_message)
            if version.status not in running:
                return version
            if time.monotonic() > deadline:
                raise CommandError(
                    f"Version {version.version} is still {version.status} after {timeout} s "
                    "(is a worker consuming the maintenance queue?); it goes on, follow it in the admin."
                )
            time.sleep(POLL_INTERVAL_S)

    def _report(self, version: RecognizerModel) -> None:
        if version.status == RecognizerModel.Status.FAILED:
            raise CommandError(f"Version {version.version} failed: {version.error}")
        self.stdout.write(
            self.style.SUCCESS(
                f"Version {version.version}: top-1 {version.top1_accuracy:.1%}, top-5 {version.top5_accuracy:.1%} "
                f"on {version.test_media} held-out media; {version.classes} products, "
                f"{version.train_media} media ({version.train_samples} vectors) trained on "
                f"in {version.training_seconds:.1f} s."
            )
        )
