# Turnout: admin API on 8001, ADS (xDS) on 18000. See docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY turnout ./turnout
COPY envoy ./envoy
RUN pip install . \
 && useradd --uid 10001 --no-create-home turnout \
 && mkdir -p /certs /bootstrap /var/lib/turnout \
 && chown turnout /certs /bootstrap /var/lib/turnout

USER turnout
EXPOSE 8001 18000
ENTRYPOINT ["turnout"]
CMD ["serve", "--admin-listen", "0.0.0.0:8001", "--xds-listen", "0.0.0.0:18000"]
