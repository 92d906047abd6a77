/**
 * "Did you mean `maxMessageBytes`?" for an unknown config key or enum value:
 * the known name closest to what was written, by edit distance,
 * comparing without case and without `_`/`-` so that max_message_bytes and
 * MAXMESSAGEBYTES find maxMessageBytes. Only close matches are suggested, so a
 * key that resembles nothing gets no misleading hint.
 */

/** Lower-case, without `_` and `-`: the form in which keys are compared. */
export function normalizeKey(name: string): string {
  return name.toLowerCase().replace(/[_-]/g, '');
}

/**
 * Edit distance counting an insertion, deletion, substitution or swap of two
 * neighbouring letters as one edit (optimal string alignment), so "hsah" is one
 * edit from "hash".
 */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/** The candidate closest to `word`, if it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = normalizeKey(word);
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const distance = editDistance(w, normalizeKey(name));
    if (!best || distance < best.distance) best = { name, distance };
  }
  if (!best) return undefined;
  // Allow about one typo per four letters, at least one and at most three.
  const allowed = Math.min(3, Math.max(1, Math.floor(w.length / 4)));
  return best.distance <= allowed ? best.name : undefined;
}
