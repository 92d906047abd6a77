/**
 * The STARTTLS certificate of the MX (RFC 3207): read from PEM files, and
 * read again when either file changes, so a renewed certificate (certbot,
 * cert-manager) is used by the next handshake without a restart. A file
 * caught half-written is not used: the pair must load into a TLS context
 * before it replaces the current one.
 *
 * Without configured files, `selfSigned` generates a key and a self-signed
 * certificate once (openssl CLI) in the generated dir and keeps using it:
 * opportunistic TLS between MTAs does not verify certificates (RFC 7435), so
 * an untrusted one still protects against passive listeners.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, unwatchFile, watchFile } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext } from 'node:tls';

export interface TlsConfig {
  certFile?: string;
  keyFile?: string;
  selfSigned: boolean;
  generatedDir: string;
}

export interface CertificatePair {
  cert: Buffer;
  key: Buffer;
}

export interface CertificateSource {
  current(): CertificatePair;
  /** Stop watching the files. */
  close(): void;
}

/** The files to use, or undefined when STARTTLS is not offered. Generates the self-signed pair if asked. */
export function certificateFiles(
  tls: TlsConfig,
  hostname: string,
): { certFile: string; keyFile: string } | undefined {
  if (tls.certFile || tls.keyFile) {
    if (!tls.certFile || !tls.keyFile) {
      throw new Error('ingress.tls: set both certFile and keyFile (or neither, with selfSigned: true)');
    }
    return { certFile: tls.certFile, keyFile: tls.keyFile };
  }
  if (!tls.selfSigned) return undefined;
  const certFile = join(tls.generatedDir, 'cert.pem');
  const keyFile = join(tls.generatedDir, 'key.pem');
  if (!existsSync(certFile) || !existsSync(keyFile)) {
    mkdirSync(tls.generatedDir, { recursive: true, mode: 0o700 });
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:prime256v1',
          '-nodes',
          '-keyout',
          keyFile,
          '-out',
          certFile,
          '-days',
          '3650',
          '-subj',
          `/CN=${hostname}`,
          '-addext',
          `subjectAltName=DNS:${hostname}`,
        ],
        { stdio: 'pipe' },
      );
    } catch (err) {
      throw new Error(
        `ingress.tls.selfSigned: cannot generate a certificate with openssl in ${tls.generatedDir} (${(err as Error).message}); install openssl or set ingress.tls.certFile/keyFile`,
      );
    }
  }
  return { certFile, keyFile };
}

function loadPair(files: { certFile: string; keyFile: string }): CertificatePair {
  const pair = { cert: readFileSync(files.certFile), key: readFileSync(files.keyFile) };
  createSecureContext(pair); // throws on a mismatched or partial pair
  return pair;
}

/**
 * Load the pair now (failing fast, naming the files) and watch both files;
 * `onChange` gets each new pair that loads. A pair that fails to load is
 * reported through `onError` and the previous one stays.
 */
export function watchCertificate(
  files: { certFile: string; keyFile: string },
  onChange: (pair: CertificatePair) => void,
  onError: (err: Error) => void,
  intervalMs = 2000,
): CertificateSource {
  let pair: CertificatePair;
  try {
    pair = loadPair(files);
  } catch (err) {
    throw new Error(
      `ingress.tls: cannot load ${files.certFile} / ${files.keyFile}: ${(err as Error).message}`,
    );
  }
  const reload = () => {
    try {
      const next = loadPair(files);
      if (next.cert.equals(pair.cert) && next.key.equals(pair.key)) return;
      pair = next;
      onChange(pair);
    } catch (err) {
      onError(err as Error);
    }
  };
  watchFile(files.certFile, { interval: intervalMs }, reload);
  watchFile(files.keyFile, { interval: intervalMs }, reload);
  return {
    current: () => pair,
    close() {
      unwatchFile(files.certFile, reload);
      unwatchFile(files.keyFile, reload);
    },
  };
}
