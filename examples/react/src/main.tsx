import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import './JamSession.css';
import JamSession from './JamSession';

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <JamSession />
  </StrictMode>,
);
