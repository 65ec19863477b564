// Express + @latch-sessions/node: the latch side of the comparison with
// server.js (express-session + connect-redis). GET /whoami reads the
// session from the __Host-latch cookie, as server.js reads connect.sid.
//   LATCH_URL=… LATCH_API_KEY=… LATCH_CACHE=0|1 PORT=18992 NODE_ENV=production node latch-server.js
import express from 'express'
import {latch} from '../../clients/node/src/express.js'

const host = process.env.HOST || '127.0.0.1'
const port = Number(process.env.PORT || 18992)
const cache = process.env.LATCH_CACHE === '1'
// LATCH_CACHE=bare: no session at all, the ceiling of an Express app here.
const bare = process.env.LATCH_CACHE === 'bare'

const sessions = bare ? null : latch({cache})
const app = express()
app.disable('x-powered-by')
if (bare) {
  app.get('/whoami', (req, res) => res.json({user: 'alice'}))
} else {
  app.use(sessions)
  app.get('/whoami', (req, res) => {
    if (!req.latch.session) return res.status(401).json({error: 'unauthenticated'})
    res.json({user: req.latch.session.subject})
  })
}
// On SIGTERM, print the cache's counters (hits, misses, stored, dropped).
process.on('SIGTERM', () => {
  if (sessions?.cache) console.log('cache', JSON.stringify(sessions.cache.stats))
  process.exit(0)
})
app.listen(port, host, () => console.log(`listening on http://${host}:${port} (${bare ? 'bare' : cache ? 'cache on' : 'cache off'})`))
