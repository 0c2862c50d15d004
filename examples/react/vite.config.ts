/// <reference types="vitest/config" />
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [react()],
  test: {
    environment: 'jsdom',
    globalSetup: ['./test/jam-server.ts'],
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
