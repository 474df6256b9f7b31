// Passkey ceremonies for loginsvc's pages. The server makes the options
// (fetched as JSON from the form's data-options URL) and checks the
// answer, which goes back in the form's hidden "credential" field by an
// ordinary form post: the page then renders or redirects as for any
// form. Without this script, or in a browser without passkeys, the
// passkey buttons stay hidden and every other part of the page works.
(function () {
  'use strict';
  var PKC = window.PublicKeyCredential;
  if (!PKC || !PKC.parseRequestOptionsFromJSON || !PKC.parseCreationOptionsFromJSON || !navigator.credentials) {
    return;
  }
  document.querySelectorAll('[data-passkey]').forEach(function (el) { el.hidden = false; });

  function options(url) {
    return fetch(url, { method: 'POST', credentials: 'same-origin', headers: { 'Accept': 'application/json' } })
      .then(function (r) {
        if (!r.ok) { throw new Error('options: HTTP ' + r.status); }
        return r.json();
      });
  }

  function failed(form, err) {
    var p = form.querySelector('[data-passkey-error]');
    if (p) { p.hidden = false; }
    var b = form.querySelector('button');
    if (b) { b.disabled = false; }
    if (window.console) { console.warn('passkey:', err); }
  }

  function send(form, credential) {
    form.elements.credential.value = JSON.stringify(credential.toJSON());
    form.submit();
  }

  // The name field's autofill offers passkeys (conditional mediation); a
  // click on the button aborts it and asks at once.
  var autofill = null;

  function assert(form, conditional) {
    var url = form.getAttribute('data-options') + (conditional ? '?conditional=1' : '');
    return options(url).then(function (opts) {
      var req = { publicKey: PKC.parseRequestOptionsFromJSON(opts.publicKey) };
      if (conditional) {
        autofill = new AbortController();
        req.mediation = 'conditional';
        req.signal = autofill.signal;
      }
      return navigator.credentials.get(req);
    }).then(function (cred) { send(form, cred); });
  }

  function register(form) {
    return options(form.getAttribute('data-options')).then(function (opts) {
      return navigator.credentials.create({ publicKey: PKC.parseCreationOptionsFromJSON(opts.publicKey) });
    }).then(function (cred) { send(form, cred); });
  }

  document.querySelectorAll('form[data-passkey-get], form[data-passkey-create]').forEach(function (form) {
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      var b = form.querySelector('button');
      if (b) { b.disabled = true; }
      var p = form.querySelector('[data-passkey-error]');
      if (p) { p.hidden = true; }
      if (autofill) { autofill.abort(); autofill = null; }
      var run = form.hasAttribute('data-passkey-create') ? register(form) : assert(form, false);
      run.catch(function (err) { failed(form, err); });
    });
  });

  var auto = document.querySelector('form[data-passkey-autofill]');
  if (auto && PKC.isConditionalMediationAvailable) {
    PKC.isConditionalMediationAvailable().then(function (ok) {
      if (ok) {
        assert(auto, true).catch(function () { /* the person chose a password, or nothing */ });
      }
    });
  }
}());
