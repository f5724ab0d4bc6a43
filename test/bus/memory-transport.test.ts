/** memoryTransport: the transport conformance suite on an in-process hub, plus its options. */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import { busTransportConformance } from '../../src/bus/conformance.js'
import { MemoryBusHub, memoryTransport } from '../../src/bus/memory-transport.js'
import { isCacheError } from '../../src/core/errors.js'

const hub = new MemoryBusHub()

busTransportConformance({
  name: 'memory',
  open: async () => memoryTransport({ hub }),
  kill: async () => hub.kill(),
  restart: async () => hub.restart(),
  downWithinMs: 100,
  reconnectWithinMs: 100,
  failWithinMs: 100,
  deliverWithinMs: 500,
})

describe('memoryTransport: options', () => {
  test('a hub that is not a MemoryBusHub is refused with ERR_INVALID_OPTIONS', () => {
    assert.throws(
      () => memoryTransport({ hub: {} as MemoryBusHub }),
      (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS') && /bus\.hub/.test((err as Error).message),
    )
    assert.throws(
      () => memoryTransport(null as unknown as object),
      (err: unknown) => isCacheError(err, 'ERR_INVALID_OPTIONS'),
    )
  })

  test('transports on different hubs do not hear each other', async () => {
    const a = memoryTransport({ hub: new MemoryBusHub() })
    const b = memoryTransport({ hub: new MemoryBusHub() })
    const got: Uint8Array[] = []
    await b.subscribe(
      'c',
      (m) => got.push(m),
      () => {},
    )
    await a.publish('c', new Uint8Array([1]))
    await new Promise((resolve) => setImmediate(resolve))
    assert.equal(got.length, 0)
    await a.close()
    await b.close()
  })
})
