/**
 * Cache nodes for client tests: the real node (src/server) started in this process on a
 * free loopback port with its own temp data directory, or as a real child process
 * (`stratacache serve`).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Clock } from '../../src/core/clock.js'
import { startNode, type NodeHandle, type NodeOptions } from '../../src/server/index.js'
import { freePort } from './server-process.js'

export interface TestNode {
  readonly node: NodeHandle
  readonly url: string
  readonly dataDir: string
  stop(): Promise<void>
}

export async function startTestNode(options: Partial<NodeOptions> & { clock?: Clock } = {}): Promise<TestNode> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'stratacache-client-'))
  const node = await startNode({ host: '127.0.0.1', port: 0, dataDir, logLevel: 'silent', disk: '64mb', ...options })
  return {
    node,
    url: node.url,
    dataDir,
    async stop() {
      await node.close()
      if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true })
    },
  }
}

/** dist/src/cli/main.js, the CLI entry point. */
export const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url))

export interface ChildNode {
  readonly url: string
  readonly child: ChildProcess
  readonly dataDir: string
  stop(): Promise<number | null>
}

/** `stratacache serve` as a real child process on a free port; resolves once it answers /healthz. */
export async function startChildNode(extraArgs: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<ChildNode> {
  const dataDir = mkdtempSync(join(tmpdir(), 'stratacache-child-'))
  const port = await freePort()
  const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', String(port), '--data-dir', dataDir, ...extraArgs], {
    env: { ...process.env, STRATACACHE_NO_TICKER: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let output = ''
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()))
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()))
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 20_000
  for (;;) {
    if (child.exitCode !== null) throw new Error(`node exited with ${child.exitCode} before answering: ${output.slice(-2000)}`)
    try {
      const res = await fetch(`${url}/healthz`)
      if (res.status === 200) break
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL')
      throw new Error(`node did not answer /healthz within 20 s: ${output.slice(-2000)}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return {
    url,
    child,
    dataDir,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
        child.kill('SIGTERM')
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
        const code = await exited
        clearTimeout(timer)
        rmSync(dataDir, { recursive: true, force: true })
        return code
      }
      rmSync(dataDir, { recursive: true, force: true })
      return child.exitCode
    },
  }
}

/** See server-process.ts: a port outside the ephemeral range, handed out once. */
export { freePort }
