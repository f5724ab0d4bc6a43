/**
 * A throwaway certificate authority and node certificates (openssl) for the cluster
 * transport's TLS tests and bench: `ca.pem`, and `<name>.key` / `<name>.pem` per node with
 * CN and a DNS SAN equal to the node id (and IP SAN 127.0.0.1). A missing openssl fails
 * with a clear message, never skips.
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TcpTransportTls } from '../../src/cluster/tcp-transport.js'

function openssl(args: readonly string[]): void {
  try {
    execFileSync('openssl', args, { stdio: 'ignore' })
  } catch (err) {
    throw new Error(`openssl ${args[0]} failed: the cluster TLS tests need openssl (apt-get install openssl)`, { cause: err })
  }
}

/** Makes a CA (`caName`) and one certificate per name, signed by it, in a new temp directory; returns the directory. */
export function makeClusterPki(names: readonly string[], caName = 'cluster-ca'): string {
  const dir = mkdtempSync(join(tmpdir(), 'stratacache-pki-'))
  const ca = join(dir, 'ca')
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${ca}.key`, '-out', `${ca}.pem`, '-days', '1', '-subj', `/CN=${caName}`])
  for (const name of names) {
    const base = join(dir, name)
    const ext = join(dir, `${name}.ext`)
    writeFileSync(ext, `subjectAltName=DNS:${name},IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`)
    openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${name}`])
    openssl(['x509', '-req', '-in', `${base}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${base}.pem`, '-days', '1', '-extfile', ext])
  }
  return dir
}

/** The TLS options of node `name` from a directory made by makeClusterPki. */
export function readClusterPki(dir: string, name: string): TcpTransportTls {
  return { key: readFileSync(join(dir, `${name}.key`)), cert: readFileSync(join(dir, `${name}.pem`)), ca: readFileSync(join(dir, 'ca.pem')) }
}
