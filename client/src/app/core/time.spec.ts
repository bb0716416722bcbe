import { dayKey, dayLabel, listTime } from './time';

describe('time formatting', () => {
  const now = new Date(2026, 10, 24, 15, 30);

  it('labels days relative to today', () => {
    expect(dayLabel(new Date(2026, 10, 24, 1, 0).toISOString(), now)).toBe('Today');
    expect(dayLabel(new Date(2026, 10, 23, 23, 59).toISOString(), now)).toBe('Yesterday');
    expect(dayLabel(new Date(2026, 10, 20, 12, 0).toISOString(), now, 'en-US')).toBe('Friday');
    expect(dayLabel(new Date(2026, 0, 2, 12, 0).toISOString(), now, 'en-US')).toBe('January 2');
    expect(dayLabel(new Date(2025, 0, 2, 12, 0).toISOString(), now, 'en-US')).toBe(
      'January 2, 2025',
    );
  });

  it('uses local calendar days', () => {
    expect(dayKey(new Date(2026, 10, 24, 0, 1).toISOString())).toBe(
      dayKey(new Date(2026, 10, 24, 23, 59).toISOString()),
    );
    expect(dayKey(new Date(2026, 10, 24, 0, 1).toISOString())).not.toBe(
      dayKey(new Date(2026, 10, 23, 23, 59).toISOString()),
    );
  });

  it('keeps list times short', () => {
    expect(listTime(new Date(2026, 10, 24, 9, 5).toISOString(), now, 'en-US')).toBe('9:05 AM');
    expect(listTime(new Date(2026, 10, 23, 9, 5).toISOString(), now, 'en-GB')).toBe('Yesterday');
    expect(listTime(new Date(2026, 10, 21, 9, 5).toISOString(), now, 'en-GB')).toBe('Sat');
  });
});
