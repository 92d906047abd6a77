/**
 * The ingress' byte budget for message bodies in flight (ingress.maxBodyBytesInFlight),
 * so that many sessions sending at once get 452 4.3.1 ("insufficient system
 * storage", RFC 5321 §4.2.2 / RFC 3463 X.3.1) and retry later, instead of the
 * process running out of memory.
 *
 * What counts is what the ingress holds in memory of a body: a small body
 * (it travels inline) whole while it is read and queued; a large body only
 * the chunks between the client's socket and the object store (message-reader.ts
 * hands them on as it reads). Each transaction takes a reservation that grows
 * chunk by chunk and shrinks as chunks are handed on; release() returns what
 * is left when the transaction ends, whatever the outcome.
 */
export class BodyBudget {
  readonly limit: number;
  #used = 0;
  readonly #onChange: ((used: number) => void) | undefined;

  constructor(limit: number, onChange?: (used: number) => void) {
    this.limit = limit;
    this.#onChange = onChange;
  }

  /** Bytes reserved now, over all transactions. */
  get used(): number {
    return this.#used;
  }

  get available(): number {
    return this.limit - this.#used;
  }

  /** A reservation of one transaction, starting at zero bytes. */
  reserve(): BodyReservation {
    return new BodyReservation(this);
  }

  /** @internal Used by BodyReservation. */
  take(bytes: number): boolean {
    if (this.#used + bytes > this.limit) return false;
    this.#used += bytes;
    this.#onChange?.(this.#used);
    return true;
  }

  /** @internal Used by BodyReservation. */
  give(bytes: number): void {
    this.#used -= bytes;
    this.#onChange?.(this.#used);
  }
}

export class BodyReservation {
  readonly #budget: BodyBudget;
  #held = 0;

  constructor(budget: BodyBudget) {
    this.#budget = budget;
  }

  /** Bytes this transaction holds. */
  get held(): number {
    return this.#held;
  }

  /** Hold `bytes` more; false (and nothing held) when the budget cannot cover them. */
  grow(bytes: number): boolean {
    if (!this.#budget.take(bytes)) return false;
    this.#held += bytes;
    return true;
  }

  /** Hand back `bytes` (chunks passed on to the object store). */
  shrink(bytes: number): void {
    const n = Math.min(bytes, this.#held);
    this.#held -= n;
    this.#budget.give(n);
  }

  /** Hand back everything still held (the transaction is over). */
  release(): void {
    this.shrink(this.#held);
  }
}
