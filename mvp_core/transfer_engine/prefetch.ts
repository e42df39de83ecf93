/**
 * Stats asked all at once. The start of a transfer looks at half a dozen target paths (staging
 * leftovers, the target and its parent) one after the other; on a remote target each is a round
 * trip (20 ms each over a WAN), so they are sent together and answered from here, once each.
 */
import type { Endpoint, Entry } from "./endpoint.ts";

export class StatPrefetch {
  private pending = new Map<string, Promise<Entry | null>>();

  constructor(private readonly ep: Endpoint, paths: readonly string[], private readonly signal?: AbortSignal) {
    for (const p of new Set(paths)) {
      const answer = ep.stat(p, { signal });
      answer.catch(() => undefined); // an answer nobody asks for must not become an unhandled rejection
      this.pending.set(p, answer);
    }
  }

  /** The prefetched answer for `path` (used once), else a fresh stat. */
  stat(path: string): Promise<Entry | null> {
    const answer = this.pending.get(path);
    if (answer === undefined) return this.ep.stat(path, { signal: this.signal });
    this.pending.delete(path);
    return answer;
  }

  /** Drops every answer not used yet: something changed the paths since they were asked. */
  forget(): void {
    this.pending.clear();
  }
}
