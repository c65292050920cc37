import { type OptionSpec, RUNNERS } from '../spec.js'

/** The HTTP server: address, authentication, admin token, static files. */
export const SERVER_OPTIONS = [
  {
    name: 'listenAddr',
    flag: 'listen',
    env: 'LISTEN_ADDR',
    config: 'listenAddr',
    kind: 'string',
    default: ':8080',
    commands: RUNNERS,
    description: 'HTTP address `[HOST]:PORT`; an empty host listens on all interfaces, port 0 picks a free port.',
  },
  {
    name: 'jwtSecret',
    flag: 'jwt-secret',
    env: 'JWT_SECRET',
    kind: 'string',
    secret: true,
    nonBlank: true,
    minBytes: 32,
    commands: ['serve', 'token'],
    description:
      'HS256/384/512 shared secret for Bearer JWTs, at least 32 bytes (e.g. `openssl rand -hex 32`). Set but empty is an error.',
  },
  {
    name: 'jwksUrl',
    flag: 'jwks-url',
    env: 'JWKS_URL',
    kind: 'string',
    nonBlank: true,
    commands: ['serve'],
    description: 'JWKS endpoint for RS*/ES* Bearer JWTs (checked at startup). Set but empty is an error.',
  },
  {
    name: 'devHeaderAuth',
    flag: 'dev-header-auth',
    env: 'SYNCHRO_DEV_HEADER_AUTH',
    kind: 'boolean',
    defaultText: 'on only when no JWT_SECRET/JWKS_URL',
    commands: ['serve'],
    description:
      'Trust the `X-User-ID` header as the user id: no authentication, development only. `false` requires JWT_SECRET or JWKS_URL.',
  },
  {
    name: 'jwtUserClaim',
    flag: 'jwt-user-claim',
    env: 'JWT_USER_CLAIM',
    config: 'jwtUserClaim',
    kind: 'string',
    default: 'sub',
    commands: ['serve', 'token'],
    description: 'JWT claim holding the user id.',
  },
  {
    name: 'adminToken',
    flag: 'admin-token',
    env: 'ADMIN_TOKEN',
    kind: 'string',
    secret: true,
    commands: RUNNERS,
    description:
      'Bearer token for the status page (`/status`, `/status.json`). Unset: the page is served only in dev header mode.',
  },
  {
    name: 'webDir',
    flag: 'web',
    env: 'SYNCHRO_WEB_DIR',
    kind: 'string',
    commands: ['serve'],
    description:
      'Serve the static files of this folder at `/` (the demo web app: `npm start` builds and passes it). Off unless given.',
  },
] as const satisfies readonly OptionSpec[]
