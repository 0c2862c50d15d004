// token.ts: asking the app's backend for a jam sign-in token. In development the backend
// is dev/token-server.mjs, behind Vite's dev server at `/token`.

/** The token endpoint's answer. */
interface TokenAnswer {
  token?: string;
  error?: string;
}

/** Fetches a fresh token for `name` from `tokenUrl`; throws an Error in plain words. */
export async function fetchToken(tokenUrl: string, name: string): Promise<string> {
  let res: Response;
  try {
    res = await fetch(tokenUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name }),
    });
  } catch {
    throw new Error('Cannot reach the sign-in service. Is it running (npm run dev)?');
  }
  const body = (await res.json().catch(() => ({}))) as TokenAnswer;
  if (!res.ok || typeof body.token !== 'string') {
    throw new Error(`The sign-in service said no: ${body.error ?? `HTTP ${res.status}`}.`);
  }
  return body.token;
}
