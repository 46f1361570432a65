# Stock Mind: one image for the web process, the Celery worker and the SQS bridge.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --create-home --uid 1000 stockmind
WORKDIR /app

COPY requirements.txt .
# The CPU build of torch (requirements pin torch==2.13.0) comes from PyTorch's CPU index.
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu -r requirements.txt

COPY . .
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --no-input \
    && mkdir -p /data/media /home/stockmind/.cache/huggingface \
    && chown -R stockmind:stockmind /data/media /home/stockmind/.cache

USER stockmind
ENV MEDIA_ROOT=/data/media
# Production is HTTPS only, behind a proxy that sets X-Forwarded-Proto
# (`manage.py check --deploy` is clean with these; tests/test_security.py).
ENV DJANGO_BEHIND_PROXY=1 \
    DJANGO_SECURE_SSL_REDIRECT=1 \
    DJANGO_SECURE_HSTS_SECONDS=31536000 \
    DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS=1 \
    DJANGO_SECURE_HSTS_PRELOAD=1
EXPOSE 8000
# One process per two or so cores: each loads the model (about 300 MiB on ONNX
# Runtime int8, the default on AVX2 CPUs; 1.1 GB on torch) and runs
# one forward pass at a time over all its cores, while its threads do the rest
# of other requests (bench/api.py). WEB_CONCURRENCY sets the processes.
ENV WEB_CONCURRENCY=1
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--threads", "8", "--timeout", "60", "--access-logfile", "-"]
