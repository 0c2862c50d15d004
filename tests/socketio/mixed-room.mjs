// mixed-room.mjs URL ROOM: the Socket.IO member of tests/socketio.rs's mixed room.
// Joins ROOM as "Sio", broadcasts {from: "sio"}, and reports on stdout, one JSON object
// a line, what it hears: the Rust test (WebTransport and WebSocket members) drives the
// rest. Exits 0 once it heard every member it expects (stdin says who), 1 on timeout.

import readline from 'node:readline';
import { io } from 'socket.io-client';

const [url, roomCode] = process.argv.slice(2);
const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);
const timer = setTimeout(() => { say({ timeout: true }); process.exit(1); }, 20_000);

const socket = io(url);
socket.on('error', (e) => say({ error: e }));
socket.on('session:user-left', ({ userId }) => say({ left: userId }));
socket.on('event:broadcast', ({ payload, senderId }, meta) => say({ heard: payload.from, senderId, seq: meta?.seq ?? null }));

const answer = await socket.timeout(5_000).emitWithAck('session:join', { roomCode, name: 'Sio', instrument: 'drums' });
if (answer.event !== 'session:joined') { say({ refused: answer }); process.exit(1); }
say({ joined: answer.data.participants.map((p) => p.name), userId: answer.data.userId, transport: socket.io.engine.transport.name });
socket.emit('event:broadcast', { roomCode, eventName: 'note', payload: { from: 'sio' } });

// The test writes "bye" when it has what it needs; the socket then leaves.
for await (const line of readline.createInterface({ input: process.stdin })) {
  if (line.trim() === 'bye') break;
}
socket.disconnect();
clearTimeout(timer);
say({ bye: true });
process.exit(0);
