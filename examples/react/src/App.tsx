// App.tsx: the app around the jam view: sign in first, then play. The jam view gets its
// sign-in tokens from `getToken`, which asks the app's backend (the token endpoint) each
// time the jam client needs one: for a create or a join, and to refresh before expiry.

import { useState } from 'react';
import type { UseJamSessionOptions } from 'jam-client/react';
import JamSession from './JamSession';
import SignIn from './SignIn';
import { fetchToken } from './token';

interface Props {
  /** The jam server. */
  serverUrl?: string;
  /** The app backend's token endpoint: `/token` on the page's own origin by default. */
  tokenUrl?: string;
  /** More client options (tests pass the `ws` WebSocket here). */
  options?: UseJamSessionOptions;
}

export default function App({ serverUrl, tokenUrl = '/token', options }: Props) {
  const [user, setUser] = useState<string | null>(null);
  if (user === null) return <SignIn tokenUrl={tokenUrl} onSignedIn={setUser} />;

  // A fresh token every time the client asks: none it sends has waited in the page.
  const getToken = () => fetchToken(tokenUrl, user);
  return <JamSession key={user} serverUrl={serverUrl} options={options} user={user} getToken={getToken} onSignOut={() => setUser(null)} />;
}
