# The agent image: `halyard agent run --in-cluster --agents <name>` (charts/halyard-agent runs one Deployment each).
#   docker build -t ghcr.io/halyard/halyard-agent:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
COPY --from=build /install /usr/local
# extension-manager runs the real helm (pinned; the operator's registry mirror can serve this image too).
COPY --from=docker.io/alpine/helm:3.16.3 /usr/bin/helm /usr/local/bin/helm
# A fixed non-root user matching the chart's securityContext (runAsUser 65532); the root filesystem is read-only
# in the pod, so state goes to the mounted /var/run/halyard.
RUN useradd --uid 65532 --user-group --no-create-home --home-dir /nonexistent halyard
USER 65532:65532
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
ENTRYPOINT ["halyard"]
CMD ["agent", "run", "--in-cluster", "--state-dir=/var/run/halyard"]
