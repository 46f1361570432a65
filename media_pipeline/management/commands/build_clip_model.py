from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from media_pipeline.clip_builder import SIZES, build_clip_model


class Command(BaseCommand):
    help = (
        "Write a randomly initialized CLIP (model, processor, BPE tokenizer) into DIR, loadable with "
        "CLIP_MODEL=DIR. Its search results are not semantic: use real weights in production."
    )

    def add_arguments(self, parser):
        parser.add_argument("directory", type=Path)
        parser.add_argument("--size", choices=list(SIZES), default="tiny")
        parser.add_argument(
            "--seed", type=int, default=0, help="Seed of the random weights: another seed, another model."
        )
        parser.add_argument("--force", action="store_true", help="Rebuild even if DIR already holds a model.")

    def handle(self, *args, directory: Path, size: str, seed: int, force: bool, **options):
        if (directory / "config.json").exists() and not force:
            self.stdout.write(f"{directory} already holds a model (use --force to rebuild).")
            return
        try:
            build_clip_model(directory, size, seed)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Built a {size} CLIP in {directory} (random weights)."))
