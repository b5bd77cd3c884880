/** Levenshtein distance: how many edits turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost));
    }
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The candidates close enough to `input` to be what was meant, closest first. "Close
 * enough" grows with the length of the name, so a long name tolerates more typos.
 */
export function closest(input: string, candidates: Iterable<string>, max = 3): string[] {
  const limit = Math.max(2, Math.floor(input.length / 3));
  return [...candidates]
    .map((name) => ({ name, distance: editDistance(input.toLowerCase(), name.toLowerCase()) }))
    .filter((c) => c.distance <= limit)
    .sort((x, y) => x.distance - y.distance || x.name.localeCompare(y.name))
    .slice(0, max)
    .map((c) => c.name);
}
