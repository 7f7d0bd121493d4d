# syntax=docker/dockerfile:1
# JobSwipe Identity: the provider and its administration CLI (`idp`) in one image.
#   docker build -t jobswipe-identity .
# docker-compose.yml runs it with Postgres, Redis and the migrations; README.md, "Deploying with Docker".
# idp/test/deploy/container.test.ts rebuilds this file's layout (its COPY lines and the npm ci line)
# outside Docker and starts the provider from it, so a file missing here fails that test.

# Production dependencies of the provider's workspaces only: no devDependencies, and none of the
# web app, the desktop app or the lint workspace. npm ci checks these manifests against the lockfile.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
COPY config/package.json config/
COPY keystore/package.json keystore/
COPY adapters/package.json adapters/
COPY migrations/package.json migrations/
COPY idp/package.json idp/
COPY idp/bin idp/bin
# No install scripts: bcrypt loads its bundled prebuilt binary and esbuild (under tsx) its platform package.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund --include-workspace-root -w config -w keystore -w adapters -w migrations -w idp

FROM node:24-bookworm-slim AS runtime
# MALLOC_ARENA_MAX: the threads that sign tokens and hash passwords would each grow a malloc arena of
# their own (tens of MB of resident memory per process after load); two are plenty (docs/scaling.md).
ENV NODE_ENV=production \
    MALLOC_ARENA_MAX=2 \
    HOST=0.0.0.0 \
    PORT=4000 \
    DATA_DIR=/data \
    PATH=/app/node_modules/.bin:$PATH
WORKDIR /app
# DATA_DIR belongs to the unprivileged user (the image's `node`, uid 1000); the application files
# stay root's, so the running process cannot change them.
RUN mkdir -p /data && chown node:node /data && chmod 700 /data
COPY --from=deps /app/node_modules node_modules
# The TypeScript sources run as they are (Node 24 strips the types; idp/bin/typescript.mjs); tests are
# left out by .dockerignore.
COPY package.json tsconfig.json ./
COPY config config
COPY keystore keystore
COPY adapters adapters
COPY migrations migrations
COPY idp idp
USER node
EXPOSE 4000
# /readyz: the database and Redis answer (docs/scaling.md). The image has no curl; node's fetch does it.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 4000) + '/readyz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# The server; `idp migrate` (and every other `idp` command) runs in the same image.
CMD ["node", "--max-semi-space-size=4", "--initial-old-space-size=128", "--max-old-space-size=1024", "--import", "./idp/bin/typescript.mjs", "idp/src/main.ts"]
