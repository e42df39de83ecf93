/** A periodic background task that never overlaps itself and can be stopped cleanly. */
import type { Logger } from "../log/log.ts";

/** A running periodic task; stop() waits for a run in progress. */
export interface Ticker {
  stop(): Promise<void>;
}

/**
 * Runs `fn` every `everyMs` (measured from the end of the previous run, so a slow run never piles
 * up). A failing run is logged and the next one goes ahead: maintenance must outlive a Redis or
 * Postgres hiccup.
 */
export function every(name: string, everyMs: number, fn: () => Promise<void>, log: Logger): Ticker {
  let stopped = false;
  let current: Promise<void> = Promise.resolve();
  let timer: ReturnType<typeof setTimeout>;
  const tick = () => {
    current = fn()
      .catch((err: unknown) => log.warn(`${name} failed`, { err }))
      .finally(() => {
        if (!stopped) timer = setTimeout(tick, everyMs);
      });
  };
  timer = setTimeout(tick, everyMs);
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await current;
    },
  };
}
