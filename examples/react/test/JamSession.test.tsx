// JamSession.test.tsx: the hook and the component against the real jam-server
// (started by jam-server.ts), in jsdom. jsdom has no WebTransport, so the
// client falls back to the WebSocket, the `ws` package's, passed in as an
// option. Storage is off so that the two clients in one window hold separate
// seats. Every wait is bounded.

import { act, cleanup, fireEvent, render, renderHook, screen, waitFor, within } from '@testing-library/react';
import { useState } from 'react';
import { afterEach, describe, expect, inject, test } from 'vitest';
import { WebSocket } from 'ws';
import type { BroadcastEvent } from 'jam-client';
import { useJamEvent, useJamSession, type UseJamSessionOptions } from 'jam-client/react';
import { dropTransport } from '../../../clients/js/test/server.mjs';
import JamSession from '../src/JamSession';

const baseUrl = inject('jamServer');
const options: UseJamSessionOptions = { WebSocket, storage: null };
const WAIT = { timeout: 10_000 };

afterEach(() => cleanup());

/** The hook plus the notes it heard, as a component would use them. */
function useJamWithNotes() {
  const jam = useJamSession({ baseUrl, ...options });
  const [notes, setNotes] = useState<BroadcastEvent[]>([]);
  useJamEvent(jam.client, 'event:broadcast', (note) => setNotes((n) => [...n, note]));
  return { jam, notes };
}

describe('useJamSession', () => {
  test('create, join, a note across, leave: presence follows', async () => {
    const ana = renderHook(useJamWithNotes);
    const ben = renderHook(useJamWithNotes);
    await waitFor(() => expect(ana.result.current.jam.state).toBe('connected'), WAIT);
    await waitFor(() => expect(ben.result.current.jam.state).toBe('connected'), WAIT);
    expect(ana.result.current.jam.transport).toBe('websocket');

    const created = await act(() => ana.result.current.jam.create({ name: 'Ana', instrument: 'piano' }));
    expect(created?.roomCode).toMatch(/^[0-9A-Z]{6}$/);
    expect(ana.result.current.jam.isHost).toBe(true);
    expect(ana.result.current.jam.me?.name).toBe('Ana');

    const joined = await act(() => ben.result.current.jam.join({ roomCode: created!.roomCode, name: 'Ben', instrument: 'drums' }));
    expect(joined?.roomCode).toBe(created!.roomCode);
    expect(ben.result.current.jam.isHost).toBe(false);
    await waitFor(
      () =>
        expect(ana.result.current.jam.room?.participants.map((p) => [p.name, p.instrument])).toEqual([
          ['Ana', 'piano'],
          ['Ben', 'drums'],
        ]),
      WAIT,
    );
    expect(ben.result.current.jam.room?.hostId).toBe(created!.userId);

    // The hook's broadcast takes the client's options: a note goes ephemeral, chat does not.
    act(() => {
      expect(ben.result.current.jam.broadcast('note', { type: 'on', note: 64, velocity: 100 }, { ephemeral: true })).toBe('websocket');
      expect(ben.result.current.jam.broadcast('chat', { text: 'hi' })).toBe('websocket');
    });
    await waitFor(() => expect(ana.result.current.notes).toHaveLength(2), WAIT);
    const [note, chat] = ana.result.current.notes;
    expect(note).toMatchObject({ eventName: 'note', payload: { note: 64 }, senderId: joined!.userId, ephemeral: true });
    expect(chat).toMatchObject({ eventName: 'chat', payload: { text: 'hi' }, senderId: joined!.userId });
    expect(chat.ephemeral).toBeUndefined();
    expect(ben.result.current.notes).toHaveLength(0);

    await act(() => ben.result.current.jam.leave());
    expect(ben.result.current.jam.room).toBeNull();
    await waitFor(() => expect(ana.result.current.jam.room?.participants.map((p) => p.name)).toEqual(['Ana']), WAIT);

    // Unmounting closes the client.
    const client = ana.result.current.jam.client!;
    ana.unmount();
    expect(client.state).toBe('disconnected');
    ben.unmount();
  });

  test('a dropped link: the hook shows reconnecting, then the same seat again', async () => {
    const { result } = renderHook(() => useJamSession({ baseUrl, ...options, reconnectBaseMs: 50, reconnectMaxMs: 200 }));
    await waitFor(() => expect(result.current.state).toBe('connected'), WAIT);
    const created = await act(() => result.current.create({ name: 'Ana', instrument: 'bass' }));
    const states: string[] = [];
    const off = result.current.client!.on('state', ({ state }) => states.push(state));
    act(() => dropTransport(result.current.client!));
    await waitFor(() => expect(result.current.client!.stats.resumes).toBe(1), WAIT);
    await waitFor(() => expect(result.current.state).toBe('connected'), WAIT);
    off();
    expect(states).toEqual(['reconnecting', 'connected']);
    expect(result.current.room?.roomCode).toBe(created!.roomCode);
    expect(result.current.me?.id).toBe(created!.userId);
    expect(result.current.error).toBeNull();
  });

  test('a failure becomes `error` with the protocol\'s code, and clearError forgets it', async () => {
    const { result } = renderHook(() => useJamSession({ baseUrl, ...options }));
    await waitFor(() => expect(result.current.state).toBe('connected'), WAIT);
    const answer = await act(() => result.current.join({ roomCode: 'ZZZZZZ', name: 'Ana' }));
    expect(answer).toBeUndefined();
    expect(result.current.error?.code).toBe('room_not_found');
    act(() => result.current.clearError());
    expect(result.current.error).toBeNull();
  });

  test('a server of another protocol version is an error, not a connection', async () => {
    const protocol2 = async (url: URL, init: { cache: 'no-store' }) => {
      const info = await (await fetch(url, init)).json();
      return Response.json({ ...info, protocol: 2 });
    };
    const { result } = renderHook(() => useJamSession({ baseUrl, ...options, fetch: protocol2 }));
    await waitFor(() => expect(result.current.error?.code).toBe('protocol_mismatch'), WAIT);
    expect(result.current.state).toBe('disconnected');
  });
});

describe('JamSession.tsx', () => {
  test('two players: create, join by code, a note heard, leave shown, errors in plain words', async () => {
    const anaView = render(<JamSession serverUrl={baseUrl} options={options} />);
    const benView = render(<JamSession serverUrl={baseUrl} options={options} />);
    const ana = within(anaView.container);
    const ben = within(benView.container);
    await waitFor(() => expect(ana.getByLabelText('transport').textContent).toBe('WebSocket'), WAIT);

    fireEvent.change(ana.getByLabelText('Your name'), { target: { value: 'Ana' } });
    fireEvent.click(ana.getByRole('button', { name: 'Create session' }));
    const code = (await ana.findByLabelText('session code', {}, WAIT)).textContent!;
    expect(code).toMatch(/^[0-9A-Z]{6}$/);

    // A wrong code first: the error in plain words.
    await waitFor(() => expect(ben.getByLabelText('connection').textContent).toBe('connected'), WAIT);
    fireEvent.change(ben.getByLabelText('Your name'), { target: { value: 'Ben' } });
    fireEvent.change(ben.getByLabelText('Instrument'), { target: { value: 'drums' } });
    fireEvent.change(ben.getByLabelText('Session code'), { target: { value: 'ZZZZZZ' } });
    fireEvent.click(ben.getByRole('button', { name: 'Join session' }));
    expect((await ben.findByRole('alert', {}, WAIT)).textContent).toContain('There is no session with that code.');

    fireEvent.change(ben.getByLabelText('Session code'), { target: { value: code.toLowerCase() } });
    fireEvent.click(ben.getByRole('button', { name: 'Join session' }));
    await ben.findByLabelText('session code', {}, WAIT);
    expect(ben.queryByRole('alert')).toBeNull();

    const players = ana.getByRole('list', { name: 'players' });
    await waitFor(() => expect(within(players).getAllByRole('listitem')).toHaveLength(2), WAIT);
    const [first, second] = within(players).getAllByRole('listitem').map((li) => li.textContent);
    expect(first).toBe('Ana (piano) · host · you');
    expect(second).toBe('Ben (drums)');

    fireEvent.pointerDown(ben.getByRole('button', { name: 'note 67' }));
    fireEvent.pointerUp(ben.getByRole('button', { name: 'note 67' }));
    await waitFor(() => expect(ana.getByLabelText('last note heard').textContent).toBe('Ben played 67'), WAIT);
    expect(ben.getByLabelText('last note heard').textContent).toBe('Nothing heard yet');

    fireEvent.click(ben.getByRole('button', { name: 'Leave' }));
    await ben.findByRole('button', { name: 'Create session' }, WAIT);
    await waitFor(() => expect(within(players).getAllByRole('listitem').map((li) => li.textContent)).toEqual(['Ana (piano) · host · you']), WAIT);
    expect(screen.getAllByLabelText('transport').map((t) => t.textContent)).toEqual(['WebSocket', 'WebSocket']);
  });

  test('a key sends its note-on and note-off as ephemeral events', async () => {
    const view = within(render(<JamSession serverUrl={baseUrl} options={options} />).container);
    await waitFor(() => expect(view.getByLabelText('connection').textContent).toBe('connected'), WAIT);
    fireEvent.change(view.getByLabelText('Your name'), { target: { value: 'Ana' } });
    fireEvent.change(view.getByLabelText('Instrument'), { target: { value: 'bass' } });
    fireEvent.click(view.getByRole('button', { name: 'Create session' }));
    const code = (await view.findByLabelText('session code', {}, WAIT)).textContent!;

    // A listener in the room hears what the view sends, flags and all.
    const ben = renderHook(useJamWithNotes);
    await waitFor(() => expect(ben.result.current.jam.state).toBe('connected'), WAIT);
    await act(() => ben.result.current.jam.join({ roomCode: code, name: 'Ben' }));
    const players = view.getByRole('list', { name: 'players' });
    await waitFor(() => expect(within(players).getAllByRole('listitem')).toHaveLength(2), WAIT);

    fireEvent.pointerDown(view.getByRole('button', { name: 'note 60' }));
    fireEvent.pointerUp(view.getByRole('button', { name: 'note 60' }));
    await waitFor(() => expect(ben.result.current.notes).toHaveLength(2), WAIT);
    expect(ben.result.current.notes.map(({ eventName, payload, ephemeral }) => [eventName, payload, ephemeral])).toEqual([
      ['note', { type: 'on', note: 60, velocity: 100, instrument: 'bass' }, true],
      ['note', { type: 'off', note: 60, velocity: 0, instrument: 'bass' }, true],
    ]);
    ben.unmount();
  });
});
