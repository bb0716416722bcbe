//! Client-side message ids: unique per sender, safe outside secure contexts (no randomUUID there).
export function newClientId(
  random: (bytes: Uint8Array) => Uint8Array = (b) => crypto.getRandomValues(b),
): string {
  const bytes = random(new Uint8Array(12));
  let hex = '';
  for (const byte of bytes) hex += byte.toString(16).padStart(2, '0');
  return `c-${Date.now().toString(36)}-${hex}`;
}
