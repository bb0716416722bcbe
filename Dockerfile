# chatd container image.
#   docker build -t chatd .
#   docker run -d -p 3000:3000 -v chatd-data:/data --name chatd chatd
# Stage 1 builds the web app with Node, stage 2 the binary with Rust (embedding that bundle),
# stage 3 is a small runtime image running as a non-root user with all state in /data.

FROM node:20-bookworm-slim AS client
WORKDIR /src/client
COPY client/package.json client/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY client/ ./
RUN NG_CLI_ANALYTICS=false npx ng build --configuration production --output-path /ui

FROM rust:1.95-bookworm AS server
WORKDIR /src
COPY Cargo.toml Cargo.lock build.rs ./
COPY migration ./migration
COPY bench ./bench
COPY src ./src
COPY --from=client /ui/browser /ui
RUN CHATD_UI_DIST=/ui cargo build --release --locked -p chatd

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin chatd \
    && mkdir -p /data && chown chatd:chatd /data
COPY --from=server /src/target/release/chatd /usr/local/bin/chatd
USER chatd
WORKDIR /data
ENV CHATD_DATA_DIR=/data \
    CHATD_LISTEN=0.0.0.0:3000
VOLUME /data
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["chatd", "healthcheck"]
ENTRYPOINT ["chatd"]
CMD ["serve"]
