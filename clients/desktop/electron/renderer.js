// The app page: talks to the main process only through window.auth (preload.cts).
const status = document.getElementById('status');
const notice = document.getElementById('notice');
const signIn = document.getElementById('sign-in');
const signOut = document.getElementById('sign-out');

function show(state) {
  status.textContent = state.status === 'signed-in' ? `Signed in as ${state.user.email ?? state.user.sub}` : 'Signed out';
  notice.hidden = !state.notice;
  notice.textContent = state.notice ?? '';
  signIn.hidden = state.status === 'signed-in';
  signOut.hidden = state.status !== 'signed-in';
}

signIn.addEventListener('click', async () => show(await window.auth.signIn()));
signOut.addEventListener('click', async () => show(await window.auth.signOut()));
window.auth.onChange(show);
window.auth.state().then(show);
