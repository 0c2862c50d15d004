/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react()],
  // jam-client is linked from ../../clients/js, which has a React of its own for
  // its type checks: the app and the hook must share one.
  resolve: { dedupe: ['react', 'react-dom'] },
  test: {
    environment: 'jsdom',
    globalSetup: ['./test/jam-server.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
