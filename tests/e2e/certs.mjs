// Test certificates made with openssl for each run, and the command runner
// the end-to-end tests share for tools such as curl, nghttp and openssl.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';

// Runs a command; resolves with its exit code and output (never rejects).
export function run(command, args, { input, timeout = 60000 } = {}) {
  return new Promise((resolve) => {
    const child = spawn(command, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => { stdout += chunk; });
    child.stderr.on('data', (chunk) => { stderr += chunk; });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeout);
    child.on('error', (error) => { clearTimeout(timer); resolve({ code: -1, stdout, stderr: String(error) }); });
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code: code ?? signal, stdout, stderr }); });
    if (input !== undefined) child.stdin.end(input);
  });
}

async function openssl(...args) {
  const result = await run('openssl', args);
  assert.equal(result.code, 0, `openssl ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

// A test CA, a server certificate for localhost and 127.0.0.1 (A), a second
// one with another serial and subject (B, for the reload), a client
// certificate of the CA, and a rogue CA with a client certificate of its own.
export async function makeCertificates(folder) {
  const config = join(folder, 'openssl.cnf');
  writeFileSync(config, `[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
authorityKeyIdentifier = keyid
[client]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`);
  const file = (name) => join(folder, name);
  const authority = (name, cn) => openssl('req', '-x509', '-config', config, '-extensions', 'ca', '-newkey', 'rsa:2048',
    '-nodes', '-keyout', file(`${name}.key`), '-out', file(`${name}.pem`), '-days', '2', '-subj', `/CN=${cn}`);
  const leaf = async (name, ca, cn, serial, extensions) => {
    await openssl('req', '-config', config, '-newkey', 'rsa:2048', '-nodes', '-keyout', file(`${name}.key`),
      '-out', file(`${name}.csr`), '-subj', `/CN=${cn}`);
    await openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${ca}.pem`), '-CAkey', file(`${ca}.key`),
      '-set_serial', `0x${serial}`, '-days', '2', '-extfile', config, '-extensions', extensions, '-out', file(`${name}.pem`));
  };
  await authority('ca', 'braid test CA');
  await authority('rogue-ca', 'rogue CA');
  await Promise.all([
    leaf('server-a', 'ca', 'braid server A', 'A001', 'server'),
    leaf('server-b', 'ca', 'braid server B', 'B002', 'server'),
    leaf('client', 'ca', 'braid test client', 'C003', 'client'),
    leaf('rogue-client', 'rogue-ca', 'rogue client', 'D004', 'client'),
  ]);
  const names = ['ca', 'server-a', 'server-b', 'client', 'rogue-client'];
  return Object.fromEntries(names.flatMap((name) => [[`${name}.pem`, file(`${name}.pem`)], [`${name}.key`, file(`${name}.key`)]]));
}

// Chromium's --ignore-certificate-errors-spki-list value for a certificate:
// the base64 SHA-256 of its public key (it trusts that key, nothing else).
export async function spkiHash(certificate) {
  const key = await run('sh', ['-c', `openssl x509 -in '${certificate}' -pubkey -noout | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64`]);
  assert.equal(key.code, 0, key.stderr);
  return key.stdout.trim();
}
