// SignIn.tsx: the sign-in screen. A name is all this example's backend asks for; a real
// app signs its users in its own way. Signing in here asks the backend for a token once,
// to know it signs for this user; the jam view asks again whenever it needs one.

import { useState, type FormEvent } from 'react';
import { fetchToken } from './token';

interface Props {
  /** The app backend's token endpoint. */
  tokenUrl: string;
  /** Signed in, under this name. */
  onSignedIn(name: string): void;
}

export default function SignIn({ tokenUrl, onSignedIn }: Props) {
  const [name, setName] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);

  async function signIn(e: FormEvent) {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      const trimmed = name.trim();
      await fetchToken(tokenUrl, trimmed);
      onSignedIn(trimmed);
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  }

  return (
    <main>
      <h1>Jam session</h1>
      <form aria-label="sign in" onSubmit={signIn}>
        <label>
          Your name <input value={name} onChange={(e) => setName(e.target.value)} maxLength={32} required />
        </label>
        <button type="submit" disabled={busy}>
          Sign in
        </button>
      </form>
      {error && <p role="alert">{error}</p>}
    </main>
  );
}
