/** An in-process change feed for tests: the test pushes notices and connection states. */
import { FeedCounters } from '../../src/feeds/feed-counters.js'
import type { ChangeFeed, ChangeNotice, FeedSink, FeedStats } from '../../src/feeds/types.js'

export class TestFeed implements ChangeFeed {
  readonly name = 'test'
  readonly scope: readonly ChangeNotice[]
  readonly #counters = new FeedCounters()

  constructor(scope: readonly ChangeNotice[] = [{}]) {
    this.scope = scope
  }

  async start(sink: FeedSink): Promise<void> {
    this.#counters.sink = sink
    this.#counters.transition('up')
  }

  send(notice: ChangeNotice): void {
    this.#counters.notice(notice)
  }

  state(s: 'up' | 'down'): void {
    this.#counters.transition(s)
  }

  stats(): FeedStats {
    return this.#counters.stats(0)
  }

  async close(): Promise<void> {
    this.#counters.close()
  }
}

/** Lets background work (L2 writes, bus deliveries on memory transports) finish. */
export async function settle(rounds = 10): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise((resolve) => setImmediate(resolve))
}
