import { SignJWT } from 'jose'
import type { Settings } from '../config.js'
import { ConfigError } from '../options/index.js'

/** `synchrod token --sub U [--ttl 1h]`: a development HS256 JWT the daemon accepts when it runs with the same secret. */
export async function token(settings: Settings): Promise<void> {
  const o = settings.options
  if (!o.jwtSecret) throw new ConfigError('JWT_SECRET is required to sign a token (use the daemon’s secret)')
  if (!o.sub) throw new ConfigError('--sub <user id> is required')
  const now = Math.floor(Date.now() / 1000)
  const jwt = await new SignJWT({ [o.jwtUserClaim]: o.sub })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuedAt(now)
    .setExpirationTime(now + Math.max(1, Math.round(o.ttl / 1000)))
    .sign(new TextEncoder().encode(o.jwtSecret))
  process.stdout.write(`${jwt}\n`)
}
