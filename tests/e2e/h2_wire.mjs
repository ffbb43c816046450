// HTTP/2 frames written and read by hand (RFC 9113) for the hostile-client
// tests, with just enough HPACK (RFC 7541): a request's fields are sent as
// literals without indexing in plain (non-Huffman) strings; of a response
// only :status, its first field, is decoded.
import net from 'node:net';

export const kPreface = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
export const Type = {
  DATA: 0x0, HEADERS: 0x1, PRIORITY: 0x2, RST_STREAM: 0x3, SETTINGS: 0x4, PUSH_PROMISE: 0x5,
  PING: 0x6, GOAWAY: 0x7, WINDOW_UPDATE: 0x8, CONTINUATION: 0x9,
};
export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 };
export const Setting = {
  HEADER_TABLE_SIZE: 0x1, ENABLE_PUSH: 0x2, MAX_CONCURRENT_STREAMS: 0x3, INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5, MAX_HEADER_LIST_SIZE: 0x6,
};
export const ErrorCode = { NO_ERROR: 0x0, PROTOCOL_ERROR: 0x1, CANCEL: 0x8, ENHANCE_YOUR_CALM: 0xb };

export function frame(type, flags, streamId, payload = Buffer.alloc(0)) {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.length, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([header, payload]);
}

// A SETTINGS frame with `entries` ({Setting id: value}).
export function settings(entries = {}) {
  const payload = Buffer.alloc(6 * Object.keys(entries).length);
  Object.entries(entries).forEach(([id, value], i) => {
    payload.writeUInt16BE(Number(id), 6 * i);
    payload.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(Type.SETTINGS, 0, 0, payload);
}

const u32 = (value) => { const b = Buffer.alloc(4); b.writeUInt32BE(value); return b; };
export const rstStream = (streamId, code = ErrorCode.CANCEL) => frame(Type.RST_STREAM, 0, streamId, u32(code));
export const windowUpdate = (streamId, increment) => frame(Type.WINDOW_UPDATE, 0, streamId, u32(increment));
export const ping = (data = Buffer.alloc(8), ack = false) => frame(Type.PING, ack ? Flag.ACK : 0, 0, data);
export const data = (streamId, payload, endStream = false) =>
  frame(Type.DATA, endStream ? Flag.END_STREAM : 0, streamId, Buffer.from(payload));

// HPACK integer with an N-bit prefix (RFC 7541 §5.1); `high` holds the bits
// above the prefix in the first byte.
function integer(value, prefixBits, high = 0) {
  const max = (1 << prefixBits) - 1;
  if (value < max) return Buffer.from([high | value]);
  const bytes = [high | max];
  for (value -= max; value >= 128; value >>= 7) bytes.push((value & 0x7f) | 0x80);
  bytes.push(value);
  return Buffer.from(bytes);
}
const plainString = (text) => {
  const bytes = Buffer.from(text);
  return Buffer.concat([integer(bytes.length, 7), bytes]);
};

// A header block of literal fields without indexing, new names (0x00).
export function headerBlock(fields) {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.from([0]), plainString(name), plainString(value)]));
}

// The fields of a request, pseudo-headers first.
export function requestFields(method, path, extra = []) {
  return [[':method', method], [':scheme', 'http'], [':path', path], [':authority', '127.0.0.1'], ...extra];
}

// A header block as one HEADERS frame and as many CONTINUATION frames as
// frames of at most `maxFrame` bytes need (END_HEADERS on the last).
export function headers(streamId, block, { endStream = true, maxFrame = 16384 } = {}) {
  const frames = [];
  for (let at = 0; at === 0 || at < block.length; at += maxFrame) {
    const last = at + maxFrame >= block.length;
    const flags = (last ? Flag.END_HEADERS : 0) | (at === 0 && endStream ? Flag.END_STREAM : 0);
    frames.push(frame(at === 0 ? Type.HEADERS : Type.CONTINUATION, flags, streamId, block.subarray(at, at + maxFrame)));
  }
  return Buffer.concat(frames);
}

// HPACK Huffman codes of the ten digits (RFC 7541 Appendix B): enough to
// read a :status.
const kDigitCodes = new Map([
  ['00000', '0'], ['00001', '1'], ['00010', '2'], ['011001', '3'], ['011010', '4'],
  ['011011', '5'], ['011100', '6'], ['011101', '7'], ['011110', '8'], ['011111', '9'],
]);

function readInteger(bytes, at, prefixBits) {
  const max = (1 << prefixBits) - 1;
  let value = bytes[at] & max;
  at += 1;
  if (value < max) return [value, at];
  for (let shift = 0; ; shift += 7) {
    const byte = bytes[at++];
    value += (byte & 0x7f) * 2 ** shift;
    if (!(byte & 0x80)) return [value, at];
  }
}

// A string literal, Huffman-decoded if it holds only digits (else null).
function readString(bytes, at) {
  const huffman = (bytes[at] & 0x80) !== 0;
  const [length, start] = readInteger(bytes, at, 7);
  const raw = bytes.subarray(start, start + length);
  if (!huffman) return [raw.toString('latin1'), start + length];
  const bits = [...raw].map((b) => b.toString(2).padStart(8, '0')).join('');
  let text = '';
  let code = '';
  for (const bit of bits) {
    code += bit;
    if (kDigitCodes.has(code)) { text += kDigitCodes.get(code); code = ''; }
    if (code.length > 6) return [null, start + length];
  }
  // What is left must be EOS padding: fewer than 8 one bits.
  return [/^1{0,7}$/.test(code) ? text : null, start + length];
}

const kStaticStatus = { 8: 200, 9: 204, 10: 206, 11: 304, 12: 400, 13: 404, 14: 500 };

// The :status of a response header block (its first field, after any
// dynamic table size updates), or null if it cannot be read this simply.
export function decodeStatus(block) {
  let at = 0;
  while (at < block.length && (block[at] & 0xe0) === 0x20) [, at] = readInteger(block, at, 5);
  if (at >= block.length) return null;
  const first = block[at];
  if (first & 0x80) return kStaticStatus[readInteger(block, at, 7)[0]] ?? null;
  let [index, next] = readInteger(block, at, first & 0x40 ? 6 : 4);
  if (index === 0) {
    const [name, after] = readString(block, next);
    if (name !== ':status') return null;
    next = after;
  } else if (!(index >= 8 && index <= 14)) {
    return null;
  }
  const [value] = readString(block, next);
  return value === null ? null : Number(value);
}

// The header block fragment of a HEADERS frame's payload (padding and
// priority removed).
export function headerFragment(f) {
  let payload = f.payload;
  let pad = 0;
  if (f.flags & Flag.PADDED) { pad = payload[0]; payload = payload.subarray(1); }
  if (f.flags & Flag.PRIORITY) payload = payload.subarray(5);
  return payload.subarray(0, payload.length - pad);
}

// The data of a DATA frame's payload (padding removed).
export function dataPayload(f) {
  if (!(f.flags & Flag.PADDED)) return f.payload;
  return f.payload.subarray(1, f.payload.length - f.payload[0]);
}

// A client connection: it writes the preface and SETTINGS, acknowledges the
// server's SETTINGS and PINGs, and keeps every frame it reads, in order.
export class RawConnection {
  constructor(port, host = '127.0.0.1') {
    this.frames = [];
    this.closed = false;
    this.waiters = new Set();
    this.pending = Buffer.alloc(0);
    this.socket = net.connect(port, host);
    this.socket.on('error', (error) => { this.error = error; });
    this.socket.on('data', (chunk) => this.read(chunk));
    this.socket.on('close', () => { this.closed = true; this.wake(); });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
  }

  // Writes the preface and a SETTINGS frame with `entries`.
  async start(entries = {}) {
    await this.connected;
    this.send(kPreface, settings(entries));
  }

  send(...buffers) {
    if (!this.closed && !this.socket.destroyed) this.socket.write(Buffer.concat(buffers));
  }

  read(chunk) {
    this.pending = Buffer.concat([this.pending, chunk]);
    while (this.pending.length >= 9) {
      const length = this.pending.readUIntBE(0, 3);
      if (this.pending.length < 9 + length) break;
      const f = {
        type: this.pending[3], flags: this.pending[4], streamId: this.pending.readUInt32BE(5) & 0x7fffffff,
        payload: Buffer.from(this.pending.subarray(9, 9 + length)),
      };
      this.pending = this.pending.subarray(9 + length);
      if (f.type === Type.SETTINGS && !(f.flags & Flag.ACK)) this.send(frame(Type.SETTINGS, Flag.ACK, 0));
      if (f.type === Type.PING && !(f.flags & Flag.ACK)) this.send(ping(f.payload, true));
      if (f.type === Type.GOAWAY) f.errorCode = f.payload.readUInt32BE(4);
      if (f.type === Type.RST_STREAM) f.errorCode = f.payload.readUInt32BE(0);
      if (f.type === Type.HEADERS) f.status = decodeStatus(headerFragment(f));
      this.frames.push(f);
    }
    this.wake();
  }

  wake() { for (const check of [...this.waiters]) check(); }

  // Resolves with the first frame (read so far or later) that matches, or
  // with null once the connection is closed without one; rejects after `ms`
  // (a failure guard, not a measurement).
  next(predicate, what, ms = 60000) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`no ${what} within ${ms} ms; frames read: ${this.describe()}`));
      }, ms);
      const check = () => {
        const found = this.frames.find(predicate);
        if (!found && !this.closed) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(found ?? null);
      };
      this.waiters.add(check);
      check();
    });
  }

  // The frames read so far, briefly.
  describe() {
    const names = Object.fromEntries(Object.entries(Type).map(([k, v]) => [v, k]));
    const counts = new Map();
    for (const f of this.frames) {
      const key = `${names[f.type] ?? f.type}${f.status ? `(${f.status})` : ''}${f.errorCode !== undefined ? `(code ${f.errorCode})` : ''}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return `${[...counts].map(([k, n]) => `${n}×${k}`).join(', ') || 'none'}${this.closed ? ', then closed' : ''}`;
  }

  close() { this.socket.destroy(); }
}
