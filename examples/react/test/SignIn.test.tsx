// SignIn.test.tsx: the example as an app: App.tsx against the real jam-server with
// sign-in on and the dev token endpoint with the same secret (both started by
// jam-server.ts), in jsdom with the `ws` WebSocket. Sign in with a name, create a
// session with a token from the endpoint, a second user joins by code; a bad token
// endpoint is an error in plain words.

import { cleanup, fireEvent, render, waitFor, within } from '@testing-library/react';
import { afterEach, describe, expect, inject, test } from 'vitest';
import { WebSocket } from 'ws';
import type { UseJamSessionOptions } from 'jam-client/react';
import App from '../src/App';

const serverUrl = inject('signedInServer');
const tokenUrl = inject('tokenUrl');
const options: UseJamSessionOptions = { WebSocket, storage: null };
const WAIT = { timeout: 10_000 };

afterEach(() => cleanup());

/** Renders the app and signs in as `name`; resolves with its queries. */
async function signedIn(name: string, url = tokenUrl) {
  const view = within(render(<App serverUrl={serverUrl} tokenUrl={url} options={options} />).container);
  fireEvent.change(view.getByLabelText('Your name'), { target: { value: name } });
  fireEvent.click(view.getByRole('button', { name: 'Sign in' }));
  return view;
}

describe('App.tsx with sign-in', () => {
  test('sign in, create a session with a token, a second user joins by code', async () => {
    const ana = await signedIn('Ana');
    expect((await ana.findByLabelText('signed in as', {}, WAIT)).textContent).toBe('Ana');
    await waitFor(() => expect(ana.getByLabelText('connection').textContent).toBe('connected'), WAIT);
    fireEvent.click(ana.getByRole('button', { name: 'Create session' }));
    const code = (await ana.findByLabelText('session code', {}, WAIT)).textContent!;
    expect(code).toMatch(/^[0-9A-Z]{6}$/);

    const ben = await signedIn('Ben');
    await waitFor(() => expect(ben.getByLabelText('connection').textContent).toBe('connected'), WAIT);
    fireEvent.change(ben.getByLabelText('Session code'), { target: { value: code } });
    fireEvent.click(ben.getByRole('button', { name: 'Join session' }));
    await ben.findByLabelText('session code', {}, WAIT);
    const players = ana.getByRole('list', { name: 'players' });
    await waitFor(
      () => expect(within(players).getAllByRole('listitem').map((li) => li.textContent)).toEqual(['Ana (piano) · host · you', 'Ben (piano)']),
      WAIT,
    );
    expect(ana.queryByRole('alert')).toBeNull();
  });

  test('a token endpoint that cannot be reached is said in plain words, and nothing is signed in', async () => {
    const view = await signedIn('Dora', 'http://127.0.0.1:9/token');
    expect((await view.findByRole('alert', {}, WAIT)).textContent).toBe('Cannot reach the sign-in service. Is it running (npm run dev)?');
    expect(view.queryByLabelText('signed in as')).toBeNull();
  });
});
