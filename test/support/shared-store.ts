/**
 * An in-memory `Store` with `conditional` (revisions, compare-and-swap, a change stream),
 * shaped like etcdStore's, for keyspace tests of several nodes on one store without etcd.
 * Every write bumps one global revision; changes reach watchers when `deliver()` is called
 * (or at once with `autoDeliver`), so a test decides when "the watch" has caught up.
 * No expiry (tests use no TTL); `lose()` / `sync()` simulate a broken change stream.
 */
import type { ConditionalWrites, RevisionedValue, ScanOptions, ScanPage, Store, StoreChange, StoreEntry } from '../../src/store/types.js'

export interface SharedStore extends Store {
  readonly conditional: ConditionalWrites
  /** Delivers every change made so far to the watchers. */
  deliver(): void
  /** Reports `lost` to every watcher (changes made until `sync` are never delivered). */
  lose(): void
  /** Reports `synced`. */
  sync(): void
  /** Conditional commits refused so far. */
  readonly conflicts: number
}

export function sharedStore(options: { autoDeliver?: boolean } = {}): SharedStore {
  const data = new Map<string, { value: Uint8Array; revision: number }>()
  const watchers = new Set<(change: StoreChange) => void>()
  let pending: { key: string; value: Uint8Array | undefined }[] = []
  let revision = 0
  let lost = false
  let conflicts = 0
  const emit = (change: StoreChange): void => {
    for (const w of [...watchers]) w(change)
  }
  const deliver = (): void => {
    const entries = pending
    pending = []
    if (entries.length > 0 && !lost) emit({ kind: 'changed', entries, revision })
  }
  const changed = (entries: { key: string; value: Uint8Array | undefined }[]): void => {
    pending.push(...entries)
    if (options.autoDeliver === true) queueMicrotask(deliver)
  }
  const put = (key: string, value: Uint8Array, rev: number): void => {
    data.set(key, { value: value.slice(), revision: rev })
  }
  const tick = async (): Promise<void> => {
    await new Promise((r) => setImmediate(r))
  }
  const store: SharedStore = {
    name: 'shared',
    async get(key) {
      await tick()
      return data.get(key)?.value.slice()
    },
    async getMany(keys) {
      await tick()
      return keys.map((k) => data.get(k)?.value.slice())
    },
    async set(key, value, _ttlMs) {
      await store.setMany([{ key, value, ttlMs: _ttlMs }])
    },
    async setMany(entries: readonly StoreEntry[]) {
      await tick()
      revision++
      for (const e of entries) put(e.key, e.value, revision)
      changed(entries.map((e) => ({ key: e.key, value: e.value.slice() })))
    },
    async delete(key) {
      return (await store.deleteMany([key])) === 1
    },
    async deleteMany(keys) {
      await tick()
      const gone = keys.filter((k) => data.delete(k))
      if (gone.length > 0) {
        revision++
        changed(gone.map((key) => ({ key, value: undefined })))
      }
      return gone.length
    },
    async touch(key) {
      await tick()
      return data.has(key)
    },
    async clear(prefix) {
      await store.deleteMany([...data.keys()].filter((k) => k.startsWith(prefix)))
    },
    async close() {},
    async scan(o: ScanOptions = {}): Promise<ScanPage> {
      await tick()
      const prefix = o.prefix ?? ''
      const keys = [...data.keys()].filter((k) => k.startsWith(prefix) && (o.cursor === undefined || k > o.cursor)).sort()
      const page = keys.slice(0, o.limit ?? 100)
      return { keys: page, cursor: page.length < keys.length ? page[page.length - 1] : undefined }
    },
    conditional: {
      async getRevisions(keys): Promise<RevisionedValue[]> {
        await tick()
        return keys.map((k) => {
          const e = data.get(k)
          return { value: e?.value.slice(), revision: e?.revision ?? 0 }
        })
      },
      async commitIf(expect, set, remove) {
        await tick()
        // Checked and applied in one synchronous step: atomic, like one etcd transaction.
        if (!expect.every((x) => (data.get(x.key)?.revision ?? 0) === x.revision)) {
          conflicts++
          return false
        }
        revision++
        for (const e of set) put(e.key, e.value, revision)
        const gone = remove.filter((k) => data.delete(k))
        changed([...set.map((e) => ({ key: e.key, value: e.value.slice() })), ...gone.map((key) => ({ key, value: undefined }))])
        return true
      },
      watch(listener) {
        watchers.add(listener)
        queueMicrotask(() => listener({ kind: 'synced', revision }))
        return {
          ready: Promise.resolve(),
          async close() {
            watchers.delete(listener)
          },
        }
      },
    },
    deliver,
    lose() {
      lost = true
      pending = []
      emit({ kind: 'lost', reason: 'disconnected' })
    },
    sync() {
      lost = false
      // A fresh watch starts from the current revision: what happened while lost is never delivered.
      pending = []
      emit({ kind: 'synced', revision })
    },
    get conflicts() {
      return conflicts
    },
  }
  return store
}
