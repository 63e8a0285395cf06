# syntax=docker/dockerfile:1
# The sealgate image: the `sealgate` binary as the entrypoint, on a distroless glibc base, as
# UID/GID 65532, with nothing written outside --data-dir (a volume), so it runs with a
# read-only root filesystem. The chart (charts/sealgate) and deploy/sealgate.yaml give only
# args (`serve --kubernetes ...`, `uninstall ...`).
#
#   docker build -t registry.example.com/sealgate:0.1.0 .
#   docker push registry.example.com/sealgate:0.1.0
#
# crates/kube/tests/chart.rs checks this file's structure (no docker daemon in CI).

# --- build ---------------------------------------------------------------------------------
FROM rust:1-bookworm AS build
WORKDIR /src
# The whole workspace (every member's manifest is needed to resolve it), no target/.
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release -p sealgate --locked \
    && install -D -m 0755 target/release/sealgate /out/sealgate

# --- runtime -------------------------------------------------------------------------------
# glibc, libgcc_s and CA certificates, no shell, no package manager. sealgate carries the
# Mozilla roots itself; a private registry's CA is given with --registry-ca.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/sealgate /usr/local/bin/sealgate
USER 65532:65532
EXPOSE 8443
ENTRYPOINT ["/usr/local/bin/sealgate"]
CMD ["--help"]
