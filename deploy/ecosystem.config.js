// PM2 process file, as the subnet's base miner is run:
//   pm2 start deploy/ecosystem.config.js && pm2 save
//   pm2 logs sv-miner
// `pm2 reload` restarts the process; `kill -HUP` on its pid reloads the model only.
module.exports = {
  apps: [
    {
      name: "sv-miner",
      script: "sv-miner",
      args: "serve --config deploy/miner.toml",
      interpreter: "none",
      autorestart: true,
      restart_delay: 5000,
      max_restarts: 5,
      min_uptime: "60s",
      kill_timeout: 10000,
    },
  ],
};
