/** A usage period: the calendar month in UTC that contains an instant; `end` is the next period's start. */
export interface Period {
  start: Date;
  end: Date;
}

export function periodOf(instant: Date): Period {
  const year = instant.getUTCFullYear();
  const month = instant.getUTCMonth();
  return { start: new Date(Date.UTC(year, month, 1)), end: new Date(Date.UTC(year, month + 1, 1)) };
}

/** The period before the one containing `instant`. */
export function previousPeriodOf(instant: Date): Period {
  const { start } = periodOf(instant);
  return periodOf(new Date(start.getTime() - 1));
}

/** Whole seconds from `now` until the period ends (Retry-After): at least 1. */
export function secondsUntil(end: Date, now: Date): number {
  return Math.max(1, Math.ceil((end.getTime() - now.getTime()) / 1000));
}
