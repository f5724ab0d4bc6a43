/**
 * Records how a promise settles, so a test can look without awaiting (and without leaving a
 * rejection unhandled). src/store/conformance.ts keeps its own copy: library code does not
 * import from test/.
 */
export interface Tracked<T> {
  state: 'pending' | 'fulfilled' | 'rejected'
  value: T | undefined
  error: unknown
}

export function track<T>(promise: Promise<T>): Tracked<T> {
  const t: Tracked<T> = { state: 'pending', value: undefined, error: undefined }
  promise.then(
    (value) => {
      t.state = 'fulfilled'
      t.value = value
    },
    (error: unknown) => {
      t.state = 'rejected'
      t.error = error
    },
  )
  return t
}
